package tenancy_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/authmesh/authmesh/internal/testenv"
)

var testDB *testenv.Mongo

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	if testDB, err = testenv.StartMongo(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer testDB.Stop()
	return m.Run()
}
