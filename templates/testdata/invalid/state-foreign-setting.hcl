state {
  backend = "pg"
  bucket  = "b" # error: Setting of another backend
  schema  = "Bad-Schema" # error: Invalid schema
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
