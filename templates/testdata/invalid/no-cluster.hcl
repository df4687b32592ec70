variable "x" {
  default = 1
}
# error: Missing cluster block