# An ephemeral cluster for CI on AWS: a hub and a few spot workers that a
# pipeline brings up, runs its tests on, and tears down. The state is in
# PostgreSQL, encrypted, one workspace per run, so the job that creates
# the cluster and the job that destroys it (on other runners, with empty
# working directories) share it:
#
#   export HVCTL_PG_CONN_STR=postgres://hvctl@db.ci/hvctl HVCTL_STATE_KEY=...   # CI secrets
#   hvctl up   examples/ci-ephemeral.hcl -workspace $CI_RUN_ID -var run_id=$CI_RUN_ID   # job 1
#   hvctl submit ...                                                           # the tests
#   hvctl down examples/ci-ephemeral.hcl -workspace $CI_RUN_ID                 # job 2
#
# If the pipeline dies before `down`, the cluster's ttl is the safety net:
# every resource is tagged hvctl:expires-at, and a scheduled
#
#   hvctl gc examples/ci-ephemeral.hcl
#
# destroys whatever has outlived it. Credentials come from the AWS SDK's
# default chain (in CI: OIDC web identity or AWS_ACCESS_KEY_ID/...). See
# docs/providers-aws.md and docs/state.md.

state {
  backend = "pg" # conn_str from HVCTL_PG_CONN_STR; schema "hvctl"
  encryption {
    key_env = "HVCTL_STATE_KEY"
  }
}

variable "run_id" {
  type        = string
  default     = "local"
  description = "The CI run this cluster belongs to (a tag on every resource)."
}

variable "region" {
  type    = string
  default = "us-east-1"
}

variable "workers" {
  type        = number
  default     = 2
  description = "Spot workers to run the tests on."
  validation {
    condition     = var.workers >= 0 && var.workers <= 20
    error_message = "workers must be between 0 and 20."
  }
}

variable "image" {
  type        = string
  default     = "resolve:ssm:/aws/service/debian/release/12/latest/amd64"
  description = "The AMI (or an SSM parameter resolving to one)."
}

variable "hvctl_url" {
  type        = string
  default     = "https://github.com/hvctl/hvctl/releases/latest/download/hvctl-linux-amd64"
  description = "Where nodes download the hvctl binary at boot."
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

provider "aws" "ci" {
  region   = var.region
  endpoint = var.aws_endpoint
  tags     = { ci_run = var.run_id }
}

cluster "ci" {
  ttl = "2h"

  overlay {
    cidr     = "10.200.0.0/16"
    topology = "star"
    hubs     = ["aws.hub"]
  }

  site "aws" {
    provider = provider.aws.ci
    network {
      cidr = "10.20.0.0/16"
    }

    node "hub" {
      roles     = ["hub", "manager"]
      public_ip = true
      instance {
        type      = "t3.small"
        image     = var.image
        user_data = local.install
      }
    }

    pool "wn" {
      count = var.workers
      instance {
        type      = "t3.medium"
        image     = var.image
        spot      = true
        user_data = local.install
      }
    }
  }
}

output "hub_endpoint" {
  value = cluster.ci.overlay.endpoint
}
