variable "state_passphrase" {
  type      = string
  sensitive = true
  default   = "correct horse battery staple"
}

state {
  backend  = "pg"
  conn_str = "postgres://hvctl@db.example/hvctl"
  schema   = "team_a"
  encryption {
    passphrase = var.state_passphrase
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
