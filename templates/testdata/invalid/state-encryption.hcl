state {
  backend = "s3"
  use_path_style = "maybe" # error: Invalid use_path_style
  encryption {
    passphrase = "x"
    key_env    = "K" # error: Both passphrase and key_env
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
