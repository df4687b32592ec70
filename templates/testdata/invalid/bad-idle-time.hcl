cluster "c" {
  elastic {
    idle_time = "automatic" # error: Invalid duration
  }

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
}
