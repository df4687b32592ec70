// Package scripts holds the shell scripts behind make and CI (the demo,
// the dependency installer, fuzzing); its tests run them.
package scripts
