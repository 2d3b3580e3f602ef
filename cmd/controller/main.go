// Command controller will run the controller manager: the Tenant reconciler and the sidecar
// injection webhook (see package controllers).
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "controller: not built yet; see package controllers")
	os.Exit(2)
}
