provider "openstack" "region" {
  cloud = "research"
}

cluster "nested" {
  ttl = "1d12h"

  overlay {
    cidr     = "10.200.0.0/16"
    topology = "hierarchical"
    hubs     = ["hq.hub"]
  }

  site "hq" {
    network {
      cidr = "192.168.0.0/24"
    }
    node "hub" {
      roles     = ["hub", "manager"]
      public_ip = true
    }
  }

  site "cloud" {
    provider = provider.openstack.region
    tier     = 2
    network {
      cidr = "10.5.0.0/16"
    }
    node "gw" {
      roles = ["gateway"]
    }

    site "zone-a" {
      network {
        cidr = "10.5.1.0/24"
      }
      pool "cpu" {
        count = 3
      }

      site "rack-1" {
        tier = 3
        network {
          cidr = "10.5.1.128/25"
        }
        node "leaf" {}
      }
    }

    site "zone-b" {
      provider = "sim"
      network {
        cidr = "10.5.2.0/24"
      }
    }
  }

  elastic {
    interval  = "10s"
    keep_idle = 2
  }

  scheduler {
    type = "slurm"
  }
}
