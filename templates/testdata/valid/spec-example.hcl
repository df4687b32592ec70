variable "burst_max" {
  type        = number
  default     = 3
  description = "Most cloud workers the cluster may burst to."
  validation {
    condition     = var.burst_max >= 0
    error_message = "burst_max must not be negative."
  }
}

locals {
  worker = { cpus = 2, memory = "4GiB" }
}

provider "local" "lab" {
  boot_time = "2s"            # simulated boot delay of each node
}

provider "aws" "ohio" {
  region  = "us-east-2"
  profile = "research"        # optional; else the SDK's default chain
}

provider "openstack" "cesnet" {
  cloud = "metacentrum"       # an entry of clouds.yaml
}

cluster "hybrid" {
  ttl  = "6h"                 # optional: expiry for `hvctl gc`
  tags = { project = "audio" }

  overlay {
    cidr      = "10.200.0.0/16"
    topology  = "star"        # star | mesh | hierarchical
    hubs      = ["onprem.frontend"]   # first is primary, the rest backups
    port      = 51820         # default 51820
    mtu       = "auto"        # default "auto" = underlay MTU - 80; or a number
    keepalive = "25s"         # default "25s"; applied to peers behind NAT
  }

  site "onprem" {
    provider = provider.local.lab
    tier     = 0              # bursting order: lower tiers fill first
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
      count = 2                # fixed size: min = max = count
      instance {
        cpus   = local.worker.cpus
        memory = local.worker.memory
      }
      labels = { arch = "x86_64" }
    }

    cache {
      size = "20GiB"           # site cache tier, held by the site's manager
    }
  }

  site "aws" {
    provider = provider.aws.ohio
    tier     = 1
    gateway  = "router"        # this site's vRouter: routes the site network
    network {
      cidr = "10.4.2.0/24"
    }

    node "router" {
      roles = ["gateway"]
      instance { type = "t3.micro" }
    }

    pool "burst" {
      min = 0
      max = var.burst_max
      instance {
        type   = "t3.medium"
        cpus   = 2
        memory = "4GiB"
        image  = "ami-0123456789abcdef0"
        price  = 0.0416        # per hour, used for cost reports and ordering
        spot   = false
      }
    }
  }

  site "cloud" {               # sites nest: a region with two zones
    provider = provider.openstack.cesnet
    tier     = 1
    network { cidr = "10.5.0.0/16" }

    site "zone-a" {
      network { cidr = "10.5.1.0/24" }
      pool "gpu" {
        min = 0
        max = 4
        instance {
          type     = "g1.large"
          gpus     = 1
          gpu_type = "a100"
        }
      }
    }
  }

  elastic {
    interval        = "5s"     # how often the policy runs
    idle_time       = "5m"     # an idle node is powered off after this
    scale_up_window = "1s"     # batch new work for this long before acting
    max_booting     = 10       # 0 = no limit
    boot_timeout    = "20m"    # a node not joined by then has failed
    max_failures    = 3        # consecutive failures before a pool is held
    hold_time       = "10m"    # how long a failing pool is held
    keep_idle       = 0        # extra idle nodes to keep ready
  }

  scheduler {
    type = "builtin"           # builtin | slurm
  }

  cache {
    node   = "10GiB"           # per-node cache tier
    global = "onprem.frontend:/srv/hvctl/data"   # where datasets live
  }
}

output "hub_endpoint" {
  value = cluster.hybrid.overlay.endpoint
}
