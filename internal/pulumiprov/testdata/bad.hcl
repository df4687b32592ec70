provider "sim" "lab" {}

cluster "bad" {
  overlay {
    cidr = "10.200.0.0/16"
  }
  site "a" {
    provider = provider.sim.lab
    network { cidr = "192.168.10.0/24" }
    pool "wn" {
      count   = 2
      colour  = "blue"
      instance { cpus = 1 }
    }
  }
}
