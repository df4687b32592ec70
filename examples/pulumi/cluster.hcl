# The cluster the Pulumi example declares: a sim hub and a pool whose
# size the Pulumi program sets (vars.workers). Runs anywhere, no root.

variable "workers" {
  type        = number
  default     = 2
  description = "Workers in the onprem pool."
}

provider "sim" "lab" {
  boot_time = "1s"
}

cluster "pulumi-example" {
  overlay {
    cidr = "10.230.0.0/16"
    hubs = ["onprem.frontend"]
  }

  site "onprem" {
    provider = provider.sim.lab
    network {
      cidr = "192.168.30.0/24"
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
      count = var.workers
      instance {
        cpus   = 2
        memory = "4GiB"
      }
    }
  }
}

output "workers" {
  value = var.workers
}
