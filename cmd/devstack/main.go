// Command devstack is `make dev`: it runs the whole system on one machine with no cluster. It
// starts the dev database, the dev mailer, the auth server with the tenants in config/samples
// (file tenant source, keys generated into .dev/), the demo app, and a sidecar in front of the
// demo app with the demo pod's annotations; seeds the demo users if they are missing; prints
// where everything is; and stops it all on Ctrl-C. Data stays in .dev/ between runs.
//
// It is dev tooling: nothing in a production binary imports it.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/yaml"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "devstack:", err)
		os.Exit(1)
	}
}

type stackOptions struct {
	bin, samples, state string
}

func run() error {
	var o stackOptions
	flag.StringVar(&o.bin, "bin", "bin", "directory of the built binaries")
	flag.StringVar(&o.samples, "samples", "config/samples", "Tenant manifests and the demo app's Deployment")
	flag.StringVar(&o.state, "state", ".dev", "where data, keys and the mailbox live")
	flag.Parse()

	annotations, err := demoAnnotations(filepath.Join(o.samples, "demo-app.yaml"))
	if err != nil {
		return err
	}
	for _, dir := range []string{filepath.Join(o.state, "db"), filepath.Join(o.state, "tenants")} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
	}
	annotationsFile := filepath.Join(o.state, "demo-app.annotations")
	if err := os.WriteFile(annotationsFile, []byte(annotations), 0o600); err != nil {
		return err
	}
	mailbox := filepath.Join(o.state, "mailbox.jsonl")

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sup := &supervisor{}
	defer sup.stopAll()

	steps := []struct {
		name  string
		args  []string
		ready string // URL answering 200, or tcp://host:port accepting connections
	}{
		{"devdb", []string{filepath.Join(o.bin, "devdb"), "-listen", "127.0.0.1:27017", "-data", filepath.Join(o.state, "db")}, "tcp://127.0.0.1:27017"},
		{"devmail", []string{filepath.Join(o.bin, "devmail"), "-listen", "127.0.0.1:1025", "-mailbox", mailbox}, "tcp://127.0.0.1:1025"},
		{"authserver", []string{filepath.Join(o.bin, "authserver"),
			"-public-addr", "127.0.0.1:3502", "-internal-addr", "127.0.0.1:3503", "-admin-addr", "127.0.0.1:9502",
			"-public-url", "http://127.0.0.1:3502", "-tenant-source", "files", "-tenants-dir", o.samples,
			"-state-dir", filepath.Join(o.state, "tenants"), "-mongo-uri", "mongodb://127.0.0.1:27017/",
			"-smtp-host", "127.0.0.1", "-smtp-port", "1025", "-smtp-tls", "none",
			"-log-format", "text"}, "http://127.0.0.1:9502/readyz"},
		{"demoapp", []string{filepath.Join(o.bin, "demoapp"), "-listen", "127.0.0.1:3501"}, "tcp://127.0.0.1:3501"},
		{"sidecar", []string{filepath.Join(o.bin, "sidecar"), "-listen", "127.0.0.1:3500", "-admin-listen", "127.0.0.1:9500",
			"-annotations-file", annotationsFile, "-auth-url", "http://127.0.0.1:3502", "-feed-url", "http://127.0.0.1:3503",
			"-drain-delay", "0s"}, "http://127.0.0.1:9500/readyz"},
	}
	for _, s := range steps {
		if err := sup.start(ctx, s.name, s.args...); err != nil {
			return err
		}
		if err := waitReady(ctx, s.ready, 60*time.Second, sup.exited(s.name)); err != nil {
			return fmt.Errorf("%s did not become ready: %w", s.name, err)
		}
		if s.name == "authserver" {
			if err := seed(ctx, "mongodb://127.0.0.1:27017/", o.samples); err != nil {
				return fmt.Errorf("seeding the demo users: %w", err)
			}
		}
	}

	fmt.Printf(`
authmesh is running (Ctrl-C stops everything; data stays in %[1]s/)

  auth server   http://127.0.0.1:3502   (x-tenant-id: darmist1 or acme2)
  sidecar       http://127.0.0.1:3500   in front of the demo app, policy from %[2]s
  demo app      http://127.0.0.1:3501   (unprotected: echoes what reaches it)
  internal API  http://127.0.0.1:3503   (revocation feed, introspection; loopback only)
  admin         http://127.0.0.1:9502 (auth server), http://127.0.0.1:9500 (sidecar): /healthz /readyz /metrics
  database      mongodb://127.0.0.1:27017/
  mailbox       %[3]s   (login codes and links; also printed below)

  users (password secret123): testuser (user), manager1 (manager), admin1 (admin) in darmist1;
                              testuser (user) in acme2
  try:  curl -s -X POST http://127.0.0.1:3502/auth/login -H 'x-tenant-id: darmist1' \
          -H 'content-type: application/json' -d '{"usernameOrEmailOrMobile":"testuser","password":"secret123"}'

`, o.state, annotationsFile, mailbox)

	select {
	case <-ctx.Done():
		fmt.Println("\nstopping...")
		return nil
	case name := <-sup.anyExit():
		return fmt.Errorf("%s exited; stopping everything", name)
	}
}

// demoAnnotations reads the demo Deployment's pod annotations and renders them in the
// downward API's file format, as a sidecar in the cluster would see them.
func demoAnnotations(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	var d appsv1.Deployment
	if err := yaml.Unmarshal(data, &d); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	a := d.Spec.Template.Annotations
	if len(a) == 0 {
		return "", fmt.Errorf("%s: the pod template has no annotations", path)
	}
	keys := make([]string, 0, len(a))
	for k := range a {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s\n", k, strconv.Quote(a[k]))
	}
	return b.String(), nil
}

// supervisor runs child processes with their output prefixed by name.
type supervisor struct {
	mu    sync.Mutex
	procs []*child
	exit  chan string
}

type child struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

func (s *supervisor) start(ctx context.Context, name string, args ...string) error {
	s.mu.Lock()
	if s.exit == nil {
		s.exit = make(chan string, 16)
	}
	s.mu.Unlock()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // Ctrl-C reaches us; we stop the children in order
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, done: make(chan struct{})}
	go prefixLines(name, out)
	go func() {
		_ = cmd.Wait()
		close(c.done)
		if ctx.Err() == nil {
			s.exit <- name
		}
	}()
	s.mu.Lock()
	s.procs = append(s.procs, c)
	s.mu.Unlock()
	return nil
}

func (s *supervisor) exited(name string) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.procs {
		if c.name == name {
			return c.done
		}
	}
	return nil
}

func (s *supervisor) anyExit() <-chan string { return s.exit }

// stopAll stops the children in reverse start order.
func (s *supervisor) stopAll() {
	s.mu.Lock()
	procs := append([]*child(nil), s.procs...)
	s.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		c := procs[i]
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.done:
		case <-time.After(10 * time.Second):
			_ = c.cmd.Process.Kill()
			<-c.done
		}
	}
}

func prefixLines(name string, r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fmt.Printf("%-10s | %s\n", name, sc.Text())
	}
}

// waitReady polls target (an http:// URL that must answer 200, or tcp://host:port).
func waitReady(ctx context.Context, target string, limit time.Duration, exited <-chan struct{}) error {
	deadline := time.Now().Add(limit)
	for {
		var err error
		if addr, ok := strings.CutPrefix(target, "tcp://"); ok {
			var c net.Conn
			if c, err = net.DialTimeout("tcp", addr, time.Second); err == nil {
				return c.Close()
			}
		} else {
			var resp *http.Response
			if resp, err = http.Get(target); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return nil
				}
				err = errors.New(resp.Status)
			}
		}
		if time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-exited:
			return errors.New("it exited")
		case <-time.After(100 * time.Millisecond):
		}
	}
}
