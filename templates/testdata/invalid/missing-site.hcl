cluster "c" { # error: Missing site block
  overlay {
    cidr     = "10.200.0.0/16"
    topology = "mesh"
  }
}
