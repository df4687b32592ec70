# A hybrid cluster on the sim provider: an on-prem site with a hub and two
# fixed workers, and a cloud site that bursts up to four workers through
# its gateway. Runs anywhere, no root needed:
#
#   hvctl up examples/sim-hybrid.hcl

variable "burst_max" {
  type        = number
  default     = 4
  description = "Most cloud workers the cluster may burst to."
  validation {
    condition     = var.burst_max >= 0
    error_message = "burst_max must not be negative."
  }
}

provider "sim" "lab" {
  boot_time = "2s"
}

provider "sim" "cloud" {
  boot_time = "3s"
}

cluster "sim-hybrid" {
  overlay {
    cidr     = "10.200.0.0/16"
    topology = "star"
    hubs     = ["onprem.frontend"]
  }

  site "onprem" {
    provider = provider.sim.lab
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

  site "cloud" {
    provider = provider.sim.cloud
    tier     = 1
    gateway  = "router"
    network {
      cidr = "10.4.2.0/24"
    }

    node "router" {
      roles = ["gateway"]
      instance {
        cpus   = 1
        memory = "1GiB"
      }
    }

    pool "burst" {
      min = 0
      max = var.burst_max
      instance {
        cpus   = 2
        memory = "4GiB"
      }
    }
  }
}

output "hub_endpoint" {
  value = cluster.sim-hybrid.overlay.endpoint
}
