# An elastic SLURM cluster across two sites, as in paper 003, on this
# machine (local provider, needs root): slurmctld runs on the frontend,
# slurmd on every worker, all over the WireGuard overlay (NodeAddr is each
# node's overlay address). The cloud pool's slots are State=CLOUD nodes.
#
#   sudo hvctl up examples/slurm-elastic.hcl
#   sudo hvctl exec onprem.frontend examples/slurm-elastic.hcl -- sbatch --wrap 'hostname'
#
# Who sizes the cloud pool: hvctl's elastic daemon reading squeue and sinfo
# (elastic_mode = "hvctl"), or SLURM's own power saving calling
# hvctl slurm resume|suspend (-var elastic_mode=power_save).
# -var accounting=true adds SLURM accounting (sacct; hvctl jobs lists the
# jobs from it).

variable "elastic_mode" {
  default = "hvctl"
}

variable "accounting" {
  default     = false
  description = "Run slurmdbd and MariaDB on the frontend: sacct and hvctl jobs see every job."
}

provider "local" "lab" {}

provider "local" "cloud" {
  boot_time = "2s" # simulated provisioning delay of each cloud node
}

cluster "slurm" {
  overlay {
    cidr = "10.210.0.0/16"
    hubs = ["onprem.frontend"]
  }

  site "onprem" {
    provider = provider.local.lab
    network {
      cidr = "192.168.90.0/24"
    }

    node "frontend" {
      roles     = ["hub", "manager"]
      public_ip = true
    }

    pool "wn" {
      count = 2
      instance {
        cpus   = 2
        memory = "1GiB"
      }
    }
  }

  site "cloud" {
    provider = provider.local.cloud
    tier     = 1
    gateway  = "gw"
    network {
      cidr = "10.90.0.0/24"
    }

    node "gw" {
      roles = ["gateway"]
    }

    pool "burst" {
      min = 0
      max = 3
      instance {
        cpus   = 2
        memory = "1GiB"
        price  = 0.0416
      }
    }
  }

  elastic {
    interval     = "2s"
    idle_time    = "20s" # SLURM's SuspendTime in power_save mode
    # SLURM's ResumeTimeout in power_save mode. A node that has not
    # registered by then is marked down and SLURM holds the jobs it was
    # given ("launch failed requeued held"), so leave room for a loaded
    # machine: local nodes register in 10-30 s, 2m was missed under load.
    boot_timeout = "5m"
  }

  scheduler {
    type         = "slurm"
    elastic_mode = var.elastic_mode
    accounting   = var.accounting
  }
}
