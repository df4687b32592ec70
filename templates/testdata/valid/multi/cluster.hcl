cluster "multi" {
  overlay {
    cidr     = "10.200.0.0/16"
    topology = "mesh"
  }

  site "cloud" {
    provider = provider.aws.main
    network {
      cidr = "10.4.0.0/24"
    }
    pool "wn" {
      count = var.workers
      instance {
        type = "t3.small"
      }
    }
  }
}
