cluster "c" {
  overlay {
    cidr = "10.200.0.0/16"
    hubs = ["a.hub"]
  }

  site "a" {
    network {
      cidr = "10.200.3.0/24" # error: Site network overlaps the overlay
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
