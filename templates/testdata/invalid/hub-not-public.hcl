cluster "c" {
  overlay {
    cidr = "10.200.0.0/16"
    hubs = ["a.hub"] # error: Hub is not reachable
  }

  site "a" {
    network {
      cidr = "192.168.1.0/24"
    }

    node "hub" {
      roles     = ["hub", "manager"]
    }

    pool "wn" {
      count = 2
    }
  }
}
