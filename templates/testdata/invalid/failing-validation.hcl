variable "burst_max" {
  type    = number
  default = -1
  validation {
    condition     = var.burst_max >= 0 # error: Invalid value for variable
    error_message = "burst_max must not be negative."
  }
}

cluster "c" {
  overlay {
    cidr = "10.200.0.0/16"
    hubs = ["a.hub"]
  }

  site "a" {
    network {
      cidr = "192.168.1.0/24"
    }

    node "hub" {
      roles     = ["hub", "manager"]
      public_ip = true
    }

    pool "wn" {
      min = 0
      max = var.burst_max
    }
  }
}
