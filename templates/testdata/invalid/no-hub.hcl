cluster "c" {
  overlay { # error: No hub
    cidr = "10.200.0.0/16"
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
