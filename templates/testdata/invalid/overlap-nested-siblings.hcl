cluster "c" {
  overlay {
    cidr = "10.200.0.0/16"
    hubs = ["a.hub"]
  }

  site "a" {
    network {
      cidr = "192.168.1.0/24"
    }

    node "hub" {
      roles     = ["hub", "manager"]
      public_ip = true
    }

    pool "wn" {
      count = 2
    }
  }

  site "cloud" {
    network {
      cidr = "10.5.0.0/16"
    }
    site "zone-a" {
      network {
        cidr = "10.5.1.0/24"
      }
    }
    site "zone-b" {
      network {
        cidr = "10.5.1.128/25" # error: Overlapping site networks
      }
    }
  }
}
