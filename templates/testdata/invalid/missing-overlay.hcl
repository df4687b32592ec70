cluster "c" { # error: Missing overlay block
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
