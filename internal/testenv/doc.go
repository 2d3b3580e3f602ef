// Package testenv gives tests real components instead of mocks: a kube-apiserver with etcd and
// authmesh's CRDs (envtest, with binaries built by `make k8s-tools`), a MongoDB-wire server
// (the devdb program, or a real MongoDB named by AUTHMESH_TEST_MONGO_URI) with a fresh
// database per test, and an SMTP listener on loopback that captures what is sent.
//
// Start the shared servers once per package in TestMain and stop them when m.Run returns:
//
//	var mongo *testenv.Mongo
//
//	func TestMain(m *testing.M) {
//		var err error
//		if mongo, err = testenv.StartMongo(); err != nil {
//			fmt.Fprintln(os.Stderr, err)
//			os.Exit(1)
//		}
//		code := m.Run()
//		mongo.Stop()
//		os.Exit(code)
//	}
//
// It is test support only: nothing outside _test.go files and dev tools imports it.
package testenv
