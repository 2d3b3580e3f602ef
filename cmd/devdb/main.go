// Command devdb is authmesh's development and test database: FerretDB with its SQLite backend,
// speaking the MongoDB wire protocol on a loopback port, with MongoDB's single-document
// atomicity added in front of it.
//
// FerretDB v1 applies an update by reading the document, changing it in Go and writing it back
// without re-checking the filter, so two concurrent compare-and-swaps on one document can both
// win and concurrent $inc operations lose counts. MongoDB guarantees that a single-document
// write is atomic, and authmesh's refresh rotation and lockout counters rely on it. devdb
// therefore accepts client connections itself and passes wire messages to FerretDB one at a
// time: each request is written and its reply read while one process-wide lock is held.
// -serialize=false turns that off, which exists only to show that the race tests catch it.
//
// It lives in its own Go module so that FerretDB and SQLite never enter the main module or a
// production binary. It is used by the test harness and by `make dev`; it is not a database to
// run in production.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

// version and commit are stamped with -ldflags "-X main.version=... -X main.commit=..." (devdb is
// its own module, so it cannot use the main module's internal/version).
var (
	version = "dev"
	commit  = "unknown"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "devdb:", err)
		os.Exit(1)
	}
}

func run() error {
	listen := flag.String("listen", "127.0.0.1:27017", "TCP address to serve the MongoDB wire protocol on (port 0 picks a free one)")
	dataDir := flag.String("data", ".dev/db", "directory for the SQLite files, one per database (created if missing)")
	serialize := flag.Bool("serialize", true, "pass wire messages to FerretDB one at a time (MongoDB's single-document atomicity)")
	verbose := flag.Bool("v", false, "log FerretDB's own messages at info level (default: errors only)")
	showVersion := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *showVersion {
		fmt.Printf("devdb %s (commit %s)\n", version, commit)
		return nil
	}

	if err := raiseOpenFileLimit(); err != nil {
		fmt.Fprintln(os.Stderr, "devdb: warning: could not raise the open-file limit:", err)
	}

	dir, err := filepath.Abs(*dataDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating data directory: %w", err)
	}

	level := slog.LevelError
	if *verbose {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	// FerretDB listens on a private Unix socket; only the serializing front door is reachable.
	sockDir, err := os.MkdirTemp("", "devdb-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(sockDir)
	backendSock := filepath.Join(sockDir, "ferretdb.sock")

	fdb, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{Unix: backendSock},
		Handler:   "sqlite",
		SQLiteURL: "file:" + dir + "/",
		Logger:    logger,
	})
	if err != nil {
		return fmt.Errorf("starting FerretDB: %w", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	fdbDone := make(chan error, 1)
	go func() { fdbDone <- fdb.Run(ctx) }()
	if err := waitForSocket(ctx, backendSock, 10*time.Second); err != nil {
		return err
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	front := &frontDoor{backend: backendSock, serialize: *serialize, logger: logger}
	go front.serve(ctx, ln)

	// The first line on stdout is the connection string; the test harness reads it.
	fmt.Printf("mongodb://%s/\n", ln.Addr())
	fmt.Fprintf(os.Stderr, "devdb: FerretDB (SQLite in %s) on %s, serialized=%t\n", dir, ln.Addr(), *serialize)

	select {
	case <-ctx.Done():
	case err := <-fdbDone:
		if err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("FerretDB stopped: %w", err)
		}
	}
	ln.Close()
	front.closeAll()
	return nil
}

func waitForSocket(ctx context.Context, path string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		c, err := net.Dial("unix", path)
		if err == nil {
			return c.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("FerretDB did not start listening within %s: %w", limit, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func raiseOpenFileLimit() error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	if lim.Cur >= lim.Max {
		return nil
	}
	lim.Cur = lim.Max
	return syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
}
