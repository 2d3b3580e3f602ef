package tenancy_test

import (
	"os"
	"testing"

	"github.com/authmesh/authmesh/internal/testenv"
)

var testDB *testenv.Mongo

func TestMain(m *testing.M) { os.Exit(testenv.RunWithMongo(m, &testDB)) }
