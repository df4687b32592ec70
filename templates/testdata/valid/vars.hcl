variable "count" {
  type    = number
  default = 1
}

variable "name" {
  type    = string
  default = "from-default"
}

variable "labels" {
  type    = map(string)
  default = {}
}

variable "opt" {
  type = object({
    size = optional(string, "1GiB")
  })
  default = {}
}

variable "secret" {
  type      = string
  default   = ""
  sensitive = true
}

cluster "vars" {
  tags = { name = var.name }

  overlay {
    cidr     = "10.200.0.0/16"
    topology = "mesh"
  }

  site "a" {
    network {
      cidr = "192.168.1.0/24"
    }
    pool "wn" {
      count  = var.count
      labels = var.labels
      instance {
        memory = var.opt.size
      }
    }
  }
}
