# Cloud bursting from an on-prem cluster that exists already: a head
# machine and workers the lab owns, reached over SSH (the static
# provider installs and starts hvctl's agent on them, and removes it on
# down), bursting into AWS when the queue grows. The head has a public
# address and is the overlay's hub; the AWS site reaches it through its
# gateway, and burst workers are spot instances the elastic daemon adds
# and removes (0 to burst_max).
#
#   ssh-keyscan -p 22 198.51.100.10 192.168.10.11 192.168.10.12 >> keys/known_hosts
#   (compare the fingerprints with the machines' own)
#   hvctl plan examples/onprem-static-burst.hcl
#   hvctl up   examples/onprem-static-burst.hcl
#
# Credentials: keys/hvctl_ed25519 (or the SSH agent) for the lab, the AWS
# SDK's default chain for AWS (docs/providers.md).

variable "burst_max" {
  type        = number
  default     = 8
  description = "Most AWS workers the cluster may burst to."
}

variable "ssh_key" {
  type        = string
  default     = "keys/hvctl_ed25519"
  description = "The private key hvctl logs in to the lab's machines with."
}

variable "known_hosts" {
  type        = string
  default     = "keys/known_hosts"
  description = "The lab machines' host keys (hvctl always checks them)."
}

variable "aws_endpoint" {
  type        = string
  default     = null
  description = "EC2 endpoint override, for tests and EC2-compatible clouds."
}

variable "aws_region" {
  type    = string
  default = "eu-west-1"
}

variable "aws_image" {
  type    = string
  default = "resolve:ssm:/aws/service/debian/release/12/latest/amd64"
}

variable "hvctl_url" {
  type    = string
  default = "https://github.com/hvctl/hvctl/releases/latest/download/hvctl-linux-amd64"
}

locals {
  install = <<-EOT
    #!/bin/sh
    set -e
    curl -fsSL -o /usr/local/bin/hvctl ${var.hvctl_url}
    chmod 0755 /usr/local/bin/hvctl
  EOT
}

provider "static" "lab" {
  user        = "hvctl"
  private_key = var.ssh_key
  known_hosts = var.known_hosts
  port        = 22
  become      = "sudo"
}

provider "aws" "burst" {
  region   = var.aws_region
  endpoint = var.aws_endpoint
}

cluster "lab" {
  overlay {
    cidr     = "10.210.0.0/16"
    topology = "hierarchical"
    hubs     = ["onprem.head"]
  }

  site "onprem" {
    provider = provider.static.lab
    tier     = 0
    network {
      cidr = "192.168.10.0/24"
    }

    node "head" {
      roles     = ["hub", "manager"]
      public_ip = true
      host      = "198.51.100.10"
    }

    pool "wn" {
      hosts = ["192.168.10.11", "192.168.10.12"]
      instance {
        cpus   = 16
        memory = "64GiB"
      }
    }
  }

  site "aws" {
    provider = provider.aws.burst
    tier     = 1
    gateway  = "router"
    network {
      cidr = "10.5.0.0/16"
    }

    node "router" {
      roles     = ["gateway"]
      public_ip = true
      instance {
        type      = "t3.micro"
        image     = var.aws_image
        user_data = local.install
      }
    }

    pool "burst" {
      min = 0
      max = var.burst_max
      instance {
        type      = "c6i.xlarge"
        cpus      = 4
        memory    = "8GiB"
        image     = var.aws_image
        spot      = true
        user_data = local.install
      }
    }
  }

  elastic {
    interval  = "10s"
    idle_time = "10m"
  }
}
