package testenv

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Mongo is a MongoDB-wire server for tests: the project's devdb program on a free loopback
// port with its data in a temporary directory, or the server named by AUTHMESH_TEST_MONGO_URI.
type Mongo struct {
	// URI is the connection string.
	URI string
	// Client is connected to URI.
	Client *mongo.Client

	cmd     *exec.Cmd
	dataDir string
	prefix  string
	seq     atomic.Int64
}

// StartMongo starts (or connects to) the test database server. Extra flags for devdb can be
// given in AUTHMESH_DEVDB_FLAGS, e.g. "-serialize=false" to show what the race tests catch.
func StartMongo() (*Mongo, error) {
	m := &Mongo{prefix: "t" + randomHex(4)}
	if uri := os.Getenv("AUTHMESH_TEST_MONGO_URI"); uri != "" {
		m.URI = uri
	} else if err := m.startDevDB("127.0.0.1:0"); err != nil {
		return nil, err
	}
	client, err := mongo.Connect(options.Client().ApplyURI(m.URI).SetTimeout(30 * time.Second))
	if err != nil {
		m.Stop()
		return nil, fmt.Errorf("testenv: connecting to %s: %w", m.URI, err)
	}
	m.Client = client
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := client.Ping(ctx, nil); err != nil {
		m.Stop()
		return nil, fmt.Errorf("testenv: pinging %s: %w", m.URI, err)
	}
	return m, nil
}

// startDevDB starts devdb on listen, with its data in m.dataDir (a new temporary directory
// the first time).
func (m *Mongo) startDevDB(listen string) error {
	bin, err := devDBBinary()
	if err != nil {
		return err
	}
	if m.dataDir == "" {
		if m.dataDir, err = os.MkdirTemp("", "authmesh-devdb-"); err != nil {
			return err
		}
	}
	args := []string{"-listen", listen, "-data", m.dataDir}
	args = append(args, strings.Fields(os.Getenv("AUTHMESH_DEVDB_FLAGS"))...)
	m.cmd = exec.Command(bin, args...)
	m.cmd.Stderr = os.Stderr
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the test binary
	stdout, err := m.cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := m.cmd.Start(); err != nil {
		return fmt.Errorf("testenv: starting %s: %w", bin, err)
	}
	uri := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		uri <- strings.TrimSpace(line)
	}()
	select {
	case m.URI = <-uri:
		if !strings.HasPrefix(m.URI, "mongodb://") {
			m.Stop()
			return fmt.Errorf("testenv: devdb did not start (said %q)", m.URI)
		}
		return nil
	case <-time.After(60 * time.Second):
		m.Stop()
		return fmt.Errorf("testenv: devdb did not print its address within 60s")
	}
}

// devDBBinary returns the devdb program named by AUTHMESH_DEVDB, or bin/devdb, building it
// from cmd/devdb when it is missing.
func devDBBinary() (string, error) {
	if bin := os.Getenv("AUTHMESH_DEVDB"); bin != "" {
		if _, err := os.Stat(bin); err == nil {
			return bin, nil
		}
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(root, "bin", "devdb")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = filepath.Join(root, "cmd", "devdb")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("testenv: building devdb (or run `make devdb`): %w\n%s", err, out)
	}
	return bin, nil
}

// Database returns a database of its own for this test, dropped when the test ends.
func (m *Mongo) Database(t testing.TB) *mongo.Database {
	t.Helper()
	name := fmt.Sprintf("%s_%d", m.prefix, m.seq.Add(1))
	db := m.Client.Database(name)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := db.Drop(ctx); err != nil {
			t.Logf("testenv: dropping %s: %v", name, err)
		}
	})
	return db
}

// Kill ends the devdb program abruptly (SIGKILL), so clients see the server vanish as they
// would in a crash or a network cut; its data stays for Restart. It fails when the server is
// external (AUTHMESH_TEST_MONGO_URI), which a test cannot stop.
func (m *Mongo) Kill() error {
	if m.cmd == nil || m.cmd.Process == nil {
		return errors.New("testenv: Kill needs the devdb program; this server is external (AUTHMESH_TEST_MONGO_URI)")
	}
	if m.cmd.ProcessState == nil { // not waited for yet
		_ = m.cmd.Process.Kill()
		_ = m.cmd.Wait()
	}
	return nil
}

// Restart starts devdb again after Kill, on the same address and data directory, so URI and
// every database written before Kill are as they were.
func (m *Mongo) Restart() error {
	if m.cmd == nil {
		return errors.New("testenv: Restart needs the devdb program; this server is external (AUTHMESH_TEST_MONGO_URI)")
	}
	if m.cmd.ProcessState == nil {
		return errors.New("testenv: Restart: devdb is still running; Kill it first")
	}
	u, err := url.Parse(m.URI)
	if err != nil {
		return err
	}
	uri := m.URI
	if err := m.startDevDB(u.Host); err != nil {
		return err
	}
	if m.URI != uri {
		return fmt.Errorf("testenv: devdb restarted on %s, want %s", m.URI, uri)
	}
	return nil
}

// Stop disconnects and stops the devdb program, removing its data.
func (m *Mongo) Stop() {
	if m.Client != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = m.Client.Disconnect(ctx)
		cancel()
	}
	if m.cmd != nil && m.cmd.Process != nil {
		_ = m.cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = m.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = m.cmd.Process.Kill()
			<-done
		}
	}
	if m.dataDir != "" {
		_ = os.RemoveAll(m.dataDir)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// RunWithMongo is a test package's TestMain body for packages that need only the database:
// it starts the server into *db, runs the tests and stops it.
//
//	func TestMain(m *testing.M) { os.Exit(testenv.RunWithMongo(m, &testDB)) }
func RunWithMongo(m *testing.M, db **Mongo) int {
	var err error
	if *db, err = StartMongo(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer (*db).Stop()
	return m.Run()
}
