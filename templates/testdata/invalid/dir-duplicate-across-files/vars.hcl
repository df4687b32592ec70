variable "n" { # error: Duplicate variable
  default = 3
}
