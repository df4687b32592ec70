variable "base" {
  type    = string
  default = "10.8.0.0/16"
}

variable "zones" {
  type    = list(string)
  default = ["a", "b"]
}

locals {
  subnets = { for i, z in var.zones : z => cidrsubnet(var.base, 8, i + 1) }
  names   = [for z in var.zones : upper(z)]
  script  = file("files/user-data.sh")
  tags    = merge({ project = "audio" }, { owner = lower("ME") })
  meta    = jsondecode(jsonencode({ n = length(var.zones) }))
}

cluster "fn" {
  tags = local.tags

  overlay {
    cidr     = cidrsubnet("10.200.0.0/8", 8, 200)
    topology = "mesh"
    mtu      = 1380
    port     = 51821
  }

  site "zone-a" {
    provider = "sim"
    network {
      cidr = local.subnets["a"]
    }
    node "head" {
      roles = ["manager", "gateway"]
      instance {
        user_data = local.script
        memory    = format("%dMiB", 512 * local.meta.n)
        disk      = 1073741824
        image     = join("-", local.names)
      }
    }
  }

  site "zone-b" {
    provider = "sim"
    network {
      cidr = local.subnets["b"]
    }
    pool "wn" {
      min = 1
      max = max(2, length(var.zones))
      labels = {
        host = cidrhost(local.subnets["b"], 10)
      }
    }
  }
}

output "first_subnet" {
  value = local.subnets["a"]
}
