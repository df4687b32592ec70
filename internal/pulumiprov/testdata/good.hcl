variable "workers" {
  type    = number
  default = 1
}

provider "sim" "lab" {}

cluster "good" {
  overlay {
    cidr = "10.200.0.0/16"
    hubs = ["a.hub"]
  }
  site "a" {
    provider = provider.sim.lab
    network { cidr = "192.168.10.0/24" }
    node "hub" {
      roles     = ["hub", "manager"]
      public_ip = true
      instance { cpus = 1 }
    }
    pool "wn" {
      count = var.workers
      instance { cpus = 1 }
    }
  }
}
