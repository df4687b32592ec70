# Paper 003's setup: an OpenStack site (CESNET in the paper) with the hub
# and two workers always on, bursting into AWS when the queue grows. The
# AWS site reaches the overlay through its gateway ("router"), which has
# an Elastic IP, source/destination checks off and the overlay route in
# the site's route table; burst workers are spot instances the elastic
# daemon adds and removes (0 to burst_max).
#
#   hvctl plan examples/aws-openstack-burst.hcl
#   hvctl up   examples/aws-openstack-burst.hcl
#
# Credentials: clouds.yaml / OS_* for OpenStack, the AWS SDK's default
# chain for AWS (docs/providers-openstack.md, docs/providers-aws.md).

variable "burst_max" {
  type        = number
  default     = 4
  description = "Most AWS workers the cluster may burst to."
  validation {
    condition     = var.burst_max >= 0
    error_message = "burst_max must not be negative."
  }
}

variable "os_cloud" {
  type        = string
  default     = "metacentrum"
  description = "The clouds.yaml entry of the OpenStack site."
}

variable "aws_region" {
  type    = string
  default = "us-east-2"
}

variable "aws_image" {
  type        = string
  default     = "resolve:ssm:/aws/service/debian/release/12/latest/amd64"
  description = "The AMI of the AWS nodes (or an SSM parameter resolving to one)."
}

variable "hvctl_url" {
  type        = string
  default     = "https://github.com/hvctl/hvctl/releases/latest/download/hvctl-linux-amd64"
  description = "Where AWS nodes download the hvctl binary at boot."
}

variable "aws_endpoint" {
  type        = string
  default     = null
  description = "EC2 endpoint override, for tests and EC2-compatible clouds."
}

locals {
  install = <<-EOT
    #!/bin/sh
    set -e
    curl -fsSL -o /usr/local/bin/hvctl ${var.hvctl_url}
    chmod 0755 /usr/local/bin/hvctl
  EOT
}

provider "openstack" "cesnet" {
  cloud     = var.os_cloud
  stop_idle = true # idle burst nodes are stopped (os-stop), not deleted, while a start is cheaper than a new node
}

provider "aws" "ohio" {
  region    = var.aws_region
  endpoint  = var.aws_endpoint
  stop_idle = true # idle burst nodes are stopped (billed for their disk only) while that beats booting new ones
  ebs_price = 0.08 # $ per GiB-month of the root volume, what a stopped node costs
}

cluster "burst" {
  ttl  = "12h"
  tags = { project = "audio" }

  overlay {
    cidr     = "10.200.0.0/16"
    topology = "hierarchical"
    hubs     = ["cesnet.frontend"]
  }

  site "cesnet" {
    provider = provider.openstack.cesnet
    tier     = 0
    network {
      cidr = "192.168.10.0/24"
    }

    node "frontend" {
      roles     = ["hub", "manager"]
      public_ip = true
      instance {
        type  = "standard.medium"
        image = "debian-12"
      }
    }

    pool "wn" {
      count = 2
      instance {
        type  = "standard.large"
        image = "debian-12"
      }
    }
  }

  site "aws" {
    provider = provider.aws.ohio
    tier     = 1
    gateway  = "router"
    network {
      cidr = "10.4.0.0/16"
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
        type      = "t3.medium"
        cpus      = 2
        memory    = "4GiB"
        image     = var.aws_image
        price     = 0.0416
        spot      = true
        user_data = local.install
      }
    }
  }

  elastic {
    interval     = "5s"
    idle_time    = "5m"
    boot_timeout = "20m"
  }
}

output "hub_endpoint" {
  value = cluster.burst.overlay.endpoint
}
