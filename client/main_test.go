package client_test

import (
	"os"
	"testing"

	"github.com/authmesh/authmesh/internal/testenv"
)

var testDB *testenv.Mongo

// TestMain runs the package's tests against the dev database; each starts a whole auth server
// with internal/testenv/authstack.
func TestMain(m *testing.M) { os.Exit(testenv.RunWithMongo(m, &testDB)) }
