provider "sim" "lab" {
  boot_time     = "0s"
  start_time    = "10ms" # machines can stop (provision.Stopper)
  stopped_price = 0.001
}

cluster "clu" {
  overlay {
    cidr = "10.200.0.0/16"
    hubs = ["onprem.frontend"]
  }
  site "onprem" {
    provider = provider.sim.lab
    network { cidr = "192.168.10.0/24" }
    node "frontend" {
      roles     = ["hub", "manager"]
      public_ip = true
    }
    pool "workers" {
      min = 2
      max = 2
      instance { cpus = 2 }
    }
  }
  site "cloud" {
    provider = provider.sim.lab
    tier     = 1
    network { cidr = "10.4.2.0/24" }
    pool "burst" {
      min = 0
      max = 2
      instance { cpus = 2 }
    }
  }
}

output "cluster_name" {
  value = cluster.clu.name
}
