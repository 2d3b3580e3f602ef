// Package version holds the version of authmesh's binaries, stamped at build time by the
// linker, and prints it for each binary's -version flag:
//
//	go build -ldflags "-X github.com/authmesh/authmesh/internal/version.Version=v0.1.0 \
//	  -X github.com/authmesh/authmesh/internal/version.Commit=$(git rev-parse HEAD)" ./cmd/...
//
// The Makefile (make build, make images) and build/Dockerfile stamp both. An unstamped
// build (go run, go test) reports Version "dev". It deliberately holds nothing else: no build
// date, so that two builds of one commit are byte-identical.
package version

import (
	"fmt"
	"runtime"
)

// Version is the release (a tag, or git describe's output); Commit the source revision. Both are
// set with -ldflags -X; they are variables only so that the linker can set them.
var (
	Version = "dev"
	Commit  = ""
)

// String is the line a binary prints for -version: "<program> <version> (commit <c>, <go>)".
func String(program string) string {
	commit := Commit
	if commit == "" {
		commit = "unknown"
	}
	return fmt.Sprintf("%s %s (commit %s, %s %s/%s)", program, Version, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
