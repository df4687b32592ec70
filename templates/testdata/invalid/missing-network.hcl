cluster "c" {
  overlay {
    cidr = "10.200.0.0/16"
    hubs = ["a.hub"]
  }

  site "a" { # error: Missing network block
    node "hub" {
      roles     = ["hub", "manager"]
      public_ip = true
    }

    pool "wn" {
      count = 2
    }
  }
}
