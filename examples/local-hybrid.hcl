# The main demo: a real two-site cluster on this machine, built from Linux
# network namespaces by the local provider (needs root).
#
#   onprem: a public frontend (hub and manager) and two workers;
#   cloud:  a private network behind NAT with a gateway, and an elastic
#           pool of 0..4 workers that take 5 s to boot.
#
# Every node runs hvctl agent and joins a WireGuard star through the hub.
#
#   sudo hvctl up examples/local-hybrid.hcl

provider "local" "lab" {
  boot_time = "0s"
}

provider "local" "cloud" {
  boot_time = "5s" # simulated provisioning delay of each cloud node
}

cluster "demo" {
  ttl = "2h"

  overlay {
    cidr     = "10.200.0.0/16"
    topology = "star"
    hubs     = ["onprem.frontend"]
  }

  site "onprem" {
    provider = provider.local.lab
    tier     = 0
    network {
      cidr = "192.168.10.0/24"
    }

    node "frontend" {
      roles     = ["hub", "manager"]
      public_ip = true
      instance {
        cpus   = 2
        memory = "2GiB"
      }
    }

    pool "wn" {
      count = 2
      instance {
        cpus   = 2
        memory = "2GiB"
      }
      labels = { arch = "x86_64" }
    }
  }

  site "cloud" {
    provider = provider.local.cloud
    tier     = 1
    gateway  = "router"
    network {
      cidr = "10.4.2.0/24"
    }

    node "router" {
      roles = ["gateway"]
      instance {
        cpus   = 1
        memory = "512MiB"
      }
    }

    pool "burst" {
      min = 0
      max = 4
      instance {
        cpus   = 2
        memory = "2GiB"
        price  = 0.0416
      }
    }
  }

  elastic {
    interval  = "2s"
    idle_time = "15s"
  }
}

output "hub_endpoint" {
  value = cluster.demo.overlay.endpoint
}
