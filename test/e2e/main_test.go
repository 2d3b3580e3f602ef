// Package e2e drives authmesh as its users do: the real binaries as processes (controller
// against a real kube-apiserver, auth server reading Tenants from it, sidecar, demo app), the
// dev database and a real SMTP listener, with Tenants applied by kubectl and every step over
// HTTP.
package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/authmesh/authmesh/internal/testenv"
)

const namespace = "authmesh-system"

// stack is everything the suite runs.
type stack struct {
	bin        string // built binaries
	dir        string // scratch: kubeconfig, annotation files, logs
	kubeconfig string
	kubectl    string
	api        *testenv.APIServer
	mongo      *testenv.Mongo
	mail       *testenv.SMTPServer

	authPublic, authInternal, authAdmin string // host:port
	procs                               map[string]*testenv.Process
	mu                                  sync.Mutex
}

var st *stack

func TestMain(m *testing.M) {
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func run(m *testing.M) (int, error) {
	dir, err := os.MkdirTemp("", "authmesh-e2e-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	st = &stack{dir: dir, bin: filepath.Join(dir, "bin"), procs: map[string]*testenv.Process{}}
	defer st.stopAll()

	if err := testenv.BuildCommands(st.bin, "./cmd/controller", "./cmd/authserver", "./cmd/sidecar", "./cmd/demoapp"); err != nil {
		return 0, err
	}
	if st.api, err = testenv.StartAPIServer(testenv.APIServerOptions{}); err != nil {
		return 0, err
	}
	defer st.api.Stop()
	st.kubectl = filepath.Join(st.api.Env.BinaryAssetsDirectory, "kubectl")
	st.kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(st.kubeconfig, st.api.Env.KubeConfig, 0o600); err != nil {
		return 0, err
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}
	if err := st.api.Client.Create(context.Background(), ns); err != nil {
		return 0, err
	}
	if st.mongo, err = testenv.StartMongo(); err != nil {
		return 0, err
	}
	defer st.mongo.Stop()
	if st.mail, err = testenv.StartSMTP(); err != nil {
		return 0, err
	}
	defer st.mail.Stop()

	st.authPublic, st.authInternal, st.authAdmin = freeAddr(), freeAddr(), freeAddr()
	if err := st.startController(); err != nil {
		return 0, err
	}
	if err := st.startAuthServer(); err != nil {
		return 0, err
	}
	return m.Run(), nil
}

func (s *stack) startAuthServer() error {
	smtpHost, smtpPort, _ := net.SplitHostPort(s.mail.Addr)
	return s.start("authserver", "http://"+s.authAdmin+"/readyz",
		"-tenant-source", "kubernetes", "-kubeconfig", s.kubeconfig, "-namespace", namespace,
		"-public-addr", s.authPublic, "-internal-addr", s.authInternal, "-admin-addr", s.authAdmin,
		"-public-url", "http://"+s.authPublic, "-smtp-host", smtpHost, "-smtp-port", smtpPort, "-smtp-tls", "none",
		"-log-format", "text",
		// The key rotation step refreshes one session in a tight loop, as load; a real client
		// refreshes once per access token and stays far below the per-session limit.
		"-rate-limit-refresh-session", "off")
}

func (s *stack) startController() error {
	return s.start("controller", "", "-kubeconfig", s.kubeconfig, "-namespace", namespace,
		"-auth-server-url", "http://"+s.authPublic, "-mongodb-uri", s.mongo.URI,
		"-metrics-bind-address", freeAddr(), "-health-probe-bind-address", freeAddr(), "-leader-elect=false",
		"-webhook-port", "0") // injection has its own tests; here sidecars are started by hand
}

// start runs bin/<name> with its output in <dir>/<name>.log, shown when a test fails, and
// waits until readyURL answers 200 when one is given.
func (s *stack) start(name, readyURL string, args ...string) error {
	p, err := testenv.StartProcess(name, filepath.Join(s.bin, name), filepath.Join(s.dir, name+".log"), args...)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.procs[name] = p
	s.mu.Unlock()
	if readyURL == "" {
		return nil
	}
	return p.WaitHTTP(readyURL, 60*time.Second)
}

// stop ends a process with SIGTERM, as Kubernetes would.
func (s *stack) stop(name string) {
	s.mu.Lock()
	p := s.procs[name]
	delete(s.procs, name)
	s.mu.Unlock()
	if p != nil {
		p.Stop(15 * time.Second)
	}
}

func (s *stack) stopAll() {
	s.mu.Lock()
	names := make([]string, 0, len(s.procs))
	for n := range s.procs {
		names = append(names, n)
	}
	s.mu.Unlock()
	for _, n := range names {
		s.stop(n)
	}
}

// logs returns the last lines of every process's log, for failure messages.
func (s *stack) logs() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	for name, p := range s.procs {
		fmt.Fprintf(&b, "----- %s -----\n%s\n", name, p.Tail(20))
	}
	return b.String()
}

// kubectl runs the real kubectl against the test API server.
func (s *stack) kubectlRun(stdin string, args ...string) (string, error) {
	cmd := exec.Command(s.kubectl, append([]string{"--kubeconfig", s.kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// runName returns base the first time and base-2, base-3... after: go test -count=N runs the
// tests again against the same stack, where the earlier runs' Tenants, users and Secrets
// remain.
func runName(base string) string {
	runNamesMu.Lock()
	defer runNamesMu.Unlock()
	runNames[base]++
	if n := runNames[base]; n > 1 {
		return fmt.Sprintf("%s-%d", base, n)
	}
	return base
}

var (
	runNamesMu sync.Mutex
	runNames   = map[string]int{}
)

// sidecarFor starts a sidecar for tenant in front of a fresh demo app and returns its URL.
func (s *stack) sidecarFor(t *testing.T, tenant string) string {
	t.Helper()
	appAddr, scAddr, adminAddr := freeAddr(), freeAddr(), freeAddr()
	appName, scName := "demoapp-"+tenant, "sidecar-"+tenant
	if err := s.startAs(appName, "demoapp", "", "-listen", appAddr); err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(appAddr)
	annotations := fmt.Sprintf("authmesh.dev/tenant=%q\nauthmesh.dev/port=%q\nauthmesh.dev/public=%q\nauthmesh.dev/roles=%q\n",
		tenant, port, "/healthz, /public/**", "/admin/**=admin; /reports/**=manager,admin")
	file := filepath.Join(s.dir, tenant+".annotations")
	if err := os.WriteFile(file, []byte(annotations), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.startAs(scName, "sidecar", "http://"+adminAddr+"/readyz",
		"-listen", scAddr, "-admin-listen", adminAddr, "-annotations-file", file,
		"-auth-url", "http://"+s.authPublic, "-feed-url", "http://"+s.authInternal, "-drain-delay", "0s", "-log-level", "debug"); err != nil {
		t.Fatal(err)
	}
	return "http://" + scAddr
}

// startAs starts binary under another process name (several demo apps and sidecars).
func (s *stack) startAs(name, binary, readyURL string, args ...string) error {
	link := filepath.Join(s.bin, name)
	if _, err := os.Lstat(link); errors.Is(err, os.ErrNotExist) {
		if err := os.Symlink(filepath.Join(s.bin, binary), link); err != nil {
			return err
		}
	}
	return s.start(name, readyURL, args...)
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func get(url, token string, header ...string) (int, string, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), nil
}
