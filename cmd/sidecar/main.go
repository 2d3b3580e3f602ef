// Command sidecar will run the sidecar: the enforcing reverse proxy in front of an app
// (see packages sidecar and guard).
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "sidecar: not built yet; see package sidecar")
	os.Exit(2)
}
