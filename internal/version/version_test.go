package version

import (
	"strings"
	"testing"
)

func TestString(t *testing.T) {
	old, oldCommit := Version, Commit
	t.Cleanup(func() { Version, Commit = old, oldCommit })

	Version, Commit = "dev", ""
	if got := String("sidecar"); !strings.HasPrefix(got, "sidecar dev (commit unknown, go") {
		t.Errorf("unstamped: got %q, want it to start with %q", got, "sidecar dev (commit unknown, go")
	}
	Version, Commit = "v1.2.3", "abc123"
	if got := String("authserver"); !strings.HasPrefix(got, "authserver v1.2.3 (commit abc123, go") {
		t.Errorf("stamped: got %q, want it to start with %q", got, "authserver v1.2.3 (commit abc123, go")
	}
}
