// Package examples holds runnable templates; its test loads every one
// of them so an example never rots.
package examples
