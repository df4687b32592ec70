variable "workers" {
  type    = number
  default = 3
}

variable "region" {
  type    = string
  default = "us-east-2"
}
