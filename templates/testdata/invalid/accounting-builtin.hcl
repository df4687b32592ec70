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
      min = 0
      max = 2
    }
  }

  scheduler {
    accounting = true # error: Accounting needs SLURM
  }
}
