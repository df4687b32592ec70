provider "static" "lab" {
  user = "hvctl"
}

cluster "c" {
  overlay {
    cidr = "10.200.0.0/16"
    hubs = ["onprem.head"]
  }
  site "onprem" {
    provider = provider.static.lab
    network { cidr = "192.168.10.0/24" }
    node "head" { # error: Missing host
      roles     = ["hub", "manager"]
      public_ip = true
    }
    node "bad" {
      host = "not a host!" # error: Invalid host
    }
    pool "wn" {
      hosts = ["192.168.10.11"]
      min   = 0 # error: Static pools cannot be elastic
      max   = 3
    }
    pool "twice" {
      hosts = ["192.168.10.12", "192.168.10.12"] # error: Invalid hosts
    }
    pool "count" {
      hosts = ["192.168.10.13"]
      count = 2 # error: Conflicting pool size
    }
    pool "none" { # error: Missing hosts
      count = 1
    }
  }
  site "cloud" {
    provider = "sim"
    network { cidr = "10.1.0.0/16" }
    node "n" {
      host = "10.1.0.5" # error: Unexpected host
    }
    pool "p" {
      hosts = ["10.1.0.6"] # error: Unexpected hosts
    }
  }
}
