package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"time"
)

// benchStack is what every sidecar measurement runs: the trivial upstream, the auth stub
// (JWKS and an empty revocation feed) and the sidecar, each a process pinned to CPU 0.
type benchStack struct {
	ctx   context.Context
	procs []*exec.Cmd

	upAddr, stubAddr, scAddr, scAdmin string
	token                             string        // a valid access token from the stub
	sidecar                           *exec.Cmd     // the sidecar process
	ready                             time.Duration // from starting the sidecar to /readyz 200
}

// startStack starts the upstream, the auth stub and the sidecar, and waits until the sidecar
// is ready. Stop ends every process it started, also when it fails.
func startStack(ctx context.Context, proxyBin, sidecarBin string) (*benchStack, error) {
	s := &benchStack{ctx: ctx, upAddr: freeAddr(), stubAddr: freeAddr(), scAddr: freeAddr(), scAdmin: freeAddr()}
	if _, err := s.start("0", proxyBin, "upstream", s.upAddr); err != nil {
		return s, err
	}
	stub := pinned(ctx, "0", proxyBin, "authstub", s.stubAddr)
	stubOut, err := stub.StdoutPipe()
	if err != nil {
		return s, err
	}
	if err := stub.Start(); err != nil {
		return s, err
	}
	s.procs = append(s.procs, stub)
	token, err := bufio.NewReader(stubOut).ReadString('\n')
	if err != nil {
		return s, fmt.Errorf("auth stub: %w", err)
	}
	s.token = strings.TrimSpace(token)
	began := time.Now()
	if s.sidecar, err = s.start("0", sidecarBin, "-listen", s.scAddr, "-admin-listen", s.scAdmin, "-tenant", "bench",
		"-upstream", "http://"+s.upAddr, "-auth-url", "http://"+s.stubAddr, "-feed-url", "http://"+s.stubAddr,
		"-log-level", "warn", "-drain-delay", "0s"); err != nil {
		return s, err
	}
	if err := waitHTTP("http://"+s.scAdmin+"/readyz", 10*time.Second); err != nil {
		return s, fmt.Errorf("sidecar: %w", err)
	}
	s.ready = time.Since(began)
	return s, nil
}

// start runs another pinned process that Stop ends.
func (s *benchStack) start(cpu, name string, args ...string) (*exec.Cmd, error) {
	cmd := pinned(s.ctx, cpu, name, args...)
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s.procs = append(s.procs, cmd)
	return cmd, nil
}

// Stop ends every process of the stack.
func (s *benchStack) Stop() {
	for _, p := range s.procs {
		_ = p.Process.Kill()
		_ = p.Wait()
	}
}
