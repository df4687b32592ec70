state {
  backend    = "s3"
  bucket     = "b"
  lock_lease = "500ms" # error: Invalid lock_lease
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
