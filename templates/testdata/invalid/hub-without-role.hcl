cluster "c" {
  overlay {
    cidr = "10.200.0.0/16"
    hubs = ["a.hub"] # error: Hub node lacks the hub role
  }

  site "a" {
    network {
      cidr = "192.168.1.0/24"
    }

    node "hub" {
      roles     = ["manager"]
      public_ip = true
    }

    pool "wn" {
      count = 2
    }
  }
}
