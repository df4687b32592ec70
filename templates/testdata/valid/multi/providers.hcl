provider "aws" "main" {
  region = var.region
}
