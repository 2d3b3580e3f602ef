package testenv

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
)

// RepoRoot returns the directory holding the main module's go.mod.
func RepoRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("testenv: cannot locate its own source file")
	}
	dir := filepath.Dir(file)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("testenv: no go.mod above " + filepath.Dir(file))
		}
		dir = parent
	}
}
