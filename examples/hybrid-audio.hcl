# Paper 003's hybrid audio-classification cluster (section 4), on the sim
# provider: two on-prem workers always on (CESNET in the paper) and up to
# three cloud workers (AWS t2.medium, 2 vCPUs, $0.0464/h in us-east-2)
# that take about 20 minutes to provision. Replay the paper's workload:
#
#   hvctl elastic simulate -f examples/hybrid-audio.hcl \
#     -w examples/workloads/hybrid-audio.json -report hybrid-audio.html

variable "idle_time" {
  type        = string
  default     = "auto"
  description = "How long a cloud worker may stay idle before it is powered off: \"auto\" (rent-or-buy from boot and setup times and the gaps seen) or a duration."
}

variable "max_booting" {
  type        = number
  default     = 10
  description = "Most cloud workers booting at once (the paper's orchestrator: 1)."
}

variable "start_time" {
  type        = string
  default     = "1m"
  description = "How long a stopped cloud worker takes to start again; \"0s\" for a cloud that cannot stop machines, so idle workers are destroyed."
}

provider "sim" "cesnet" {
  boot_time = "2m"
}

provider "sim" "aws" {
  boot_time = "20m"
  # EC2 stops an EBS-backed instance and starts it again in about a
  # minute; stopped, a t2.medium bills only its 8 GiB gp3 root volume
  # (8 × $0.08 per GiB-month / 730 h = $0.00088/h, 1.9% of running).
  start_time    = var.start_time
  stopped_price = 0.00088
}

cluster "hybrid-audio" {
  overlay {
    cidr     = "10.200.0.0/16"
    topology = "star"
    hubs     = ["cesnet.frontend"]
  }

  site "cesnet" {
    provider = provider.sim.cesnet
    tier     = 0
    network {
      cidr = "192.168.10.0/24"
    }

    node "frontend" {
      roles     = ["hub", "manager"]
      public_ip = true
      instance {
        cpus   = 2
        memory = "4GiB"
      }
    }

    pool "wn" {
      count = 2
      instance {
        cpus   = 2
        memory = "4GiB"
      }
    }
  }

  site "aws" {
    provider = provider.sim.aws
    tier     = 1
    gateway  = "vrouter"
    network {
      cidr = "10.4.2.0/24"
    }

    node "vrouter" {
      roles = ["gateway"]
      instance {
        type   = "t2.micro"
        cpus   = 1
        memory = "1GiB"
        price  = 0.0116
      }
    }

    pool "wn" {
      min = 0
      max = 3
      instance {
        type   = "t2.medium"
        cpus   = 2
        memory = "4GiB"
        price  = 0.0464
      }
    }
  }

  elastic {
    interval        = "5s"
    idle_time       = var.idle_time
    scale_up_window = "10s"
    max_booting     = var.max_booting
    boot_timeout    = "30m" # the cloud takes ~20m to provision
    max_failures    = 3
    hold_time       = "10m"
    keep_idle       = 0
  }
}
