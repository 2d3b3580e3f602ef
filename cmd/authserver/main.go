// Command authserver will run the auth server: the public API on 3502, the internal API on
// 3503 and the admin port 9502 (see package authserver).
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "authserver: not built yet; see package authserver")
	os.Exit(2)
}
