state {
  path = "" # error: Invalid path
  encryption {
    key_env = "1-not a name" # error: Invalid key_env
  }
}

cluster "c" {
  overlay {
    cidr     = "10.200.0.0/16"
    topology = "mesh"
  }

  site "a" {
    network {
      cidr = "192.168.1.0/24"
    }
    pool "wn" {
      count = 1
    }
  }
}
