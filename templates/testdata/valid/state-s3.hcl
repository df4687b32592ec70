state {
  backend        = "s3"
  bucket         = "hvctl-state"
  region         = "eu-central-1"
  use_path_style = true
  encryption {
    key_env = "HVCTL_STATE_KEY"
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
