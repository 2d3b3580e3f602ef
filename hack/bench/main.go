// Command bench measures the sidecar against a tuned bare httputil.ReverseProxy in one run, so
// the figures are ratios that survive a noisy machine. `make bench` runs it.
//
// Every component is its own process, pinned to CPU 0 where taskset exists, and the load
// generator (wrk, or a built-in closed-loop client when wrk is missing) to CPU 1. Rounds
// alternate which proxy goes first. Per proxy it reports throughput, CPU per request (from
// /proc), p50/p99 at full load, p50/p99 at a fixed moderate rate (open loop), and peak RSS.
//
// Then, in the same run, it adds rows each next to a baseline of that run (issue 12):
// revocation propagation to 4 sidecar processes of an in-process auth server (revocation.go),
// JWKS fetches under a flood of unknown-kid tokens (jwksflood.go), refresh and the session
// list against raw driver calls (sessions.go, through BenchmarkSessions), and the controller
// binary taking 100 and 1,000 Tenants to Ready against the floor of the writes it must make
// (controller.go; `bench controller` runs those alone). It prints one table and writes it as
// JSON (-results) and as a PNG bar chart beside it (table.go).
//
// The upstream, the bare proxy and the auth stub run from the small hack/bench/benchproxy
// binary, so the baseline is not weighed down by what this program links.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: bench run|soak|controller [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = run(os.Args[2:])
	case "soak":
		err = soak(os.Args[2:])
	case "controller":
		err = controllerOnly(os.Args[2:])
	default:
		err = fmt.Errorf("unknown subcommand %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// Result is one proxy's figures, medians over the rounds.
type Result struct {
	Name           string  `json:"name"`
	RPS            float64 `json:"rps"`
	CPUPerRequest  float64 `json:"cpu_us_per_request"`
	P50            float64 `json:"p50_ms_full_load"`
	P99            float64 `json:"p99_ms_full_load"`
	FixedRateP50   float64 `json:"p50_ms_fixed_rate"`
	FixedRateP99   float64 `json:"p99_ms_fixed_rate"`
	PeakRSSMiB     float64 `json:"peak_rss_mib"`
	ReadyMillis    float64 `json:"ready_ms,omitempty"`
	RoundsRPS      []float64
	roundsCPU      []float64
	roundsP50      []float64
	roundsP99      []float64
	roundsFixedP50 []float64
	roundsFixedP99 []float64
}

func run(args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	sidecarBin := fs.String("sidecar", "bin/sidecar", "the sidecar binary")
	proxyBin := fs.String("benchproxy", "bin/benchproxy", "the upstream, bare proxy and auth stub binary (hack/bench/benchproxy)")
	rounds := fs.Int("rounds", 5, "A/B rounds")
	duration := fs.Duration("duration", 5*time.Second, "length of each load run")
	conns := fs.Int("connections", 32, "concurrent connections")
	rate := fs.Int("rate", 1000, "requests per second of the fixed-rate runs")
	out := fs.String("out", ".bench/sidecar.json", "where to write the JSON results")
	resultsOut := fs.String("results", ".bench/results.json", "where to write the consolidated table (JSON, and a PNG chart beside it)")
	logouts := fs.Int("logouts", 100, "logouts of the revocation row (0 skips it)")
	sidecars := fs.Int("revocation-sidecars", 4, "sidecar processes of the revocation row")
	floodFor := fs.Duration("flood", 10*time.Second, "length of the JWKS flood row (0 skips it)")
	sessionsPkg := fs.String("sessions", "./authserver/sessions", "package whose BenchmarkSessions gives the refresh and list rows (empty skips them)")
	sessionsN := fs.Int("sessions-n", 200, "operations per sub-benchmark of the sessions rows")
	floodTenants := fs.Int("flood-tenants", 2, "tenants flooded at once in the JWKS flood row")
	controllerBin := fs.String("controller", "", "the controller binary of the Tenants-to-Ready rows (empty skips them)")
	controllerSizes := fs.String("controller-sizes", "100,1000", "Tenant counts of the controller rows")
	controllerRounds := fs.Int("controller-rounds", 2, "A/B rounds of the controller rows below 1,000 Tenants (1,000 and up run once)")
	controllerWorkers := fs.Int("controller-workers", 4, "the controller's concurrent reconciles, and the floor's workers")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := startStack(ctx, *proxyBin, *sidecarBin)
	defer st.Stop()
	if err != nil {
		return err
	}
	bareAddr := freeAddr()
	bareStarted := time.Now()
	bare, err := st.start("0", *proxyBin, "bare", bareAddr, "http://"+st.upAddr)
	if err != nil {
		return err
	}
	// The baseline of the sidecar's start: the bare proxy's, from exec to accepting connections.
	if err := waitHTTP("http://"+bareAddr+"/api/orders", 5*time.Second); err != nil {
		return err
	}
	bareReady := time.Since(bareStarted)
	upAddr, scAddr, token, ready, sc := st.upAddr, st.scAddr, st.token, st.ready, st.sidecar
	if err := waitTCP(upAddr, 5*time.Second); err != nil {
		return err
	}

	targets := []*Result{{Name: "bare proxy (256 idle conns)"}, {Name: "authmesh sidecar"}}
	pids := []int{bare.Process.Pid, sc.Process.Pid}
	urls := []string{"http://" + bareAddr + "/api/orders", "http://" + scAddr + "/api/orders"}
	header := "Authorization: Bearer " + token
	// Warm both up.
	for i := range targets {
		if _, err := load(ctx, urls[i], header, *conns, 2*time.Second); err != nil {
			return err
		}
	}
	for round := range *rounds {
		order := []int{0, 1}
		if round%2 == 1 {
			order = []int{1, 0}
		}
		for _, i := range order {
			cpuBefore := cpuSeconds(pids[i])
			res, err := load(ctx, urls[i], header, *conns, *duration)
			if err != nil {
				return err
			}
			cpu := cpuSeconds(pids[i]) - cpuBefore
			t := targets[i]
			t.RoundsRPS = append(t.RoundsRPS, res.rps)
			t.roundsCPU = append(t.roundsCPU, cpu/float64(res.requests)*1e6)
			t.roundsP50 = append(t.roundsP50, res.p50)
			t.roundsP99 = append(t.roundsP99, res.p99)
			fixed, err := fixedRate(ctx, urls[i], token, *rate, *duration)
			if err != nil {
				return err
			}
			t.roundsFixedP50 = append(t.roundsFixedP50, fixed.p50)
			t.roundsFixedP99 = append(t.roundsFixedP99, fixed.p99)
			fmt.Fprintf(os.Stderr, "round %d %-28s %8.0f rps  %6.1f µs CPU/req  p99 %.2f ms  fixed-rate p99 %.2f ms\n",
				round+1, t.Name, res.rps, cpu/float64(res.requests)*1e6, res.p99, fixed.p99)
		}
	}
	for i, t := range targets {
		t.RPS, t.CPUPerRequest = median(t.RoundsRPS), median(t.roundsCPU)
		t.P50, t.P99 = median(t.roundsP50), median(t.roundsP99)
		t.FixedRateP50, t.FixedRateP99 = median(t.roundsFixedP50), median(t.roundsFixedP99)
		t.PeakRSSMiB = peakRSS(pids[i])
	}
	targets[1].ReadyMillis = float64(ready.Microseconds()) / 1000
	b, s := targets[0], targets[1]
	fmt.Printf("\n%-30s %10s %12s %12s %12s %14s %14s %10s\n", "proxy", "rps", "x bare", "CPU µs/req", "x bare", "p99 full (ms)", "p99 @rate (ms)", "RSS MiB")
	for _, t := range targets {
		fmt.Printf("%-30s %10.0f %12.2f %12.1f %12.2f %14.2f %14.2f %10.1f\n", t.Name, t.RPS, t.RPS/b.RPS, t.CPUPerRequest, t.CPUPerRequest/b.CPUPerRequest, t.P99, t.FixedRateP99, t.PeakRSSMiB)
	}
	fmt.Printf("\nsidecar added p99 at %d rps: %.3f ms (p50 %.3f ms); ready %.0f ms after start (keys fetched, revocations read)\n",
		*rate, s.FixedRateP99-b.FixedRateP99, s.FixedRateP50-b.FixedRateP50, s.ReadyMillis)
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		return err
	}
	data, _ := json.MarshalIndent(map[string]any{
		"connections": *conns, "duration_s": duration.Seconds(), "rounds": *rounds, "fixed_rate_rps": *rate,
		"results": targets, "throughput_ratio": s.RPS / b.RPS, "cpu_ratio": s.CPUPerRequest / b.CPUPerRequest,
		"added_p99_ms_fixed_rate": s.FixedRateP99 - b.FixedRateP99,
	}, "", "  ")
	if err := os.WriteFile(*out, data, 0o644); err != nil {
		return err
	}

	// The consolidated table (issue 12): every row a ratio to a baseline of the same run.
	bareName := b.Name
	rows := []Row{
		row("sidecar throughput", s.RPS, "rps", b.RPS, bareName, fmt.Sprintf("median of %d rounds of %s, %d connections", *rounds, *duration, *conns)),
		row("sidecar CPU per request", s.CPUPerRequest, "µs", b.CPUPerRequest, bareName, ""),
		row("sidecar p99 at full load", s.P99, "ms", b.P99, bareName, ""),
		row(fmt.Sprintf("sidecar p50 at %d rps", *rate), s.FixedRateP50, "ms", b.FixedRateP50, bareName, "open loop"),
		row(fmt.Sprintf("sidecar p99 at %d rps", *rate), s.FixedRateP99, "ms", b.FixedRateP99, bareName, "open loop"),
		row("sidecar peak RSS", s.PeakRSSMiB, "MiB", b.PeakRSSMiB, bareName, ""),
		row("sidecar start to ready", s.ReadyMillis, "ms", float64(bareReady.Microseconds())/1000, "bare proxy start to its first answer",
			"sidecar: exec to /readyz 200, its tenant's keys fetched and revocations read"),
	}
	meta := map[string]any{"connections": *conns, "duration_s": duration.Seconds(), "rounds": *rounds, "fixed_rate_rps": *rate,
		"sidecar_ready_ms": s.ReadyMillis}
	if *logouts > 0 {
		fmt.Fprintf(os.Stderr, "revocation: %d logouts, %d sidecar processes (auth server in process, dev database)\n", *logouts, *sidecars)
		rv, err := measureRevocation(*sidecarBin, *logouts, *sidecars, 20*time.Second)
		if err != nil {
			return fmt.Errorf("revocation row: %w", err)
		}
		note := fmt.Sprintf("%d logouts, %d sidecar processes, feed long poll %s; each sidecar polled over HTTP with the session's access token until it answers 401", rv.logouts, rv.sidecars, rv.longPollWait)
		rows = append(rows,
			row(fmt.Sprintf("revocation at all %d sidecars after the logout's answer p50", rv.sidecars), rv.p50, "ms", rv.rttP50, "loopback HTTP round trip p50", note),
			row(fmt.Sprintf("revocation at all %d sidecars after the logout's answer p99", rv.sidecars), rv.p99, "ms", rv.rttP99, "loopback HTTP round trip p99", note+fmt.Sprintf("; max %.2f ms", rv.max)),
			row(fmt.Sprintf("revocation at all %d sidecars from the logout's send p50", rv.sidecars), rv.sentP50, "ms", rv.callP50, "the logout call p50", note),
			row(fmt.Sprintf("revocation at all %d sidecars from the logout's send p99", rv.sidecars), rv.sentP99, "ms", rv.callP99, "the logout call p99", note),
			row("calls from sidecars to the auth server other than the feed, during the logouts", float64(rv.otherCalls), "calls", float64(rv.feedCalls), "feed long polls, counted apart", "must be 0"),
		)
		meta["revocation"] = map[string]any{"logouts": rv.logouts, "sidecars": rv.sidecars, "long_poll_wait_s": rv.longPollWait.Seconds(),
			"p50_ms": rv.p50, "p99_ms": rv.p99, "from_send_p50_ms": rv.sentP50, "from_send_p99_ms": rv.sentP99, "logout_call_p50_ms": rv.callP50, "logout_call_p99_ms": rv.callP99, "max_ms": rv.max, "feed_calls": rv.feedCalls, "other_calls": rv.otherCalls}
		if rv.otherCalls != 0 {
			fmt.Fprintf(os.Stderr, "WARNING: %d calls to the auth server besides the feed during the revocation run\n", rv.otherCalls)
		}
	}
	if *floodFor > 0 {
		fmt.Fprintf(os.Stderr, "JWKS flood: %d tenants, %s of unknown-kid tokens\n", *floodTenants, *floodFor)
		fl, err := measureJWKSFlood(*floodTenants, 32, *floodFor)
		if err != nil {
			return fmt.Errorf("JWKS flood row: %w", err)
		}
		rows = append(rows, row("JWKS fetches per tenant per second, unknown-kid flood", fl.fetchesPerTenant, "/s", fl.requestsPerTenant,
			"unknown-kid requests per tenant per second", fmt.Sprintf("%d tenants, 32 clients each giving up after 20 ms, %s; guard.Verifier over guard.RemoteKeys (MinFetchInterval %s); %d fetches for %d requests",
				fl.tenants, fl.duration, fl.minFetchInterval, fl.fetches, fl.requests)))
		meta["jwks_flood"] = map[string]any{"tenants": fl.tenants, "duration_s": fl.duration.Seconds(), "requests": fl.requests, "fetches": fl.fetches}
	}
	if *sessionsPkg != "" {
		fmt.Fprintf(os.Stderr, "sessions: BenchmarkSessions in %s, %d operations each (dev database)\n", *sessionsPkg, *sessionsN)
		sb, err := runSessionsBench(ctx, *sessionsPkg, *sessionsN)
		if err != nil {
			return fmt.Errorf("sessions rows: %w", err)
		}
		note := fmt.Sprintf("%d operations each, over HTTP against the in-process auth server; baselines are driver calls on the same collection in the same run; dev database (FerretDB + SQLite, serialized)", *sessionsN)
		rows = append(rows,
			row("refresh (one rotation)", sb["refresh"].rate, "ops/s", sb["raw-findOneAndUpdate-rotation-shape"].rate, "raw findOneAndUpdate, the rotation's filter", note),
			row("refresh (one rotation), vs by _id only", sb["refresh"].rate, "ops/s", sb["raw-findOneAndUpdate"].rate, "raw findOneAndUpdate by _id", note),
			row("list sessions (100)", sb["list"].rate, "ops/s", sb["raw-find"].rate, "raw find by userId", note),
		)
		meta["sessions"] = sb.json()
	}
	if *controllerBin != "" {
		cr, cm, err := measureControllerSizes(ctx, *controllerBin, *controllerSizes, *controllerRounds, *controllerWorkers)
		if err != nil {
			return fmt.Errorf("controller rows: %w", err)
		}
		rows = append(rows, cr...)
		meta["controller"] = cm
	}
	printTable(rows)
	return writeResults(*resultsOut, meta, rows)
}

// pinned runs a program on one CPU when taskset is available.
func pinned(ctx context.Context, cpu, name string, args ...string) *exec.Cmd {
	if path, err := exec.LookPath("taskset"); err == nil {
		return exec.CommandContext(ctx, path, append([]string{"-c", cpu, name}, args...)...)
	}
	return exec.CommandContext(ctx, name, args...)
}

type loadResult struct {
	requests int
	rps      float64
	p50, p99 float64 // milliseconds
}

var wrkLine = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$`)

// load runs a closed-loop load: wrk pinned to CPU 1 when installed, else a Go client.
func load(ctx context.Context, target, header string, conns int, d time.Duration) (loadResult, error) {
	if _, err := exec.LookPath("wrk"); err != nil {
		return goLoad(ctx, target, header, conns, d)
	}
	cmd := pinned(ctx, "1", "wrk", "-t1", "-c"+strconv.Itoa(conns), "-d"+strconv.Itoa(int(d.Seconds()))+"s", "--latency", "-H", header, target)
	out, err := cmd.Output()
	if err != nil {
		return loadResult{}, fmt.Errorf("wrk: %w", err)
	}
	var r loadResult
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 2 && f[0] == "Requests/sec:":
			r.rps, _ = strconv.ParseFloat(f[1], 64)
		case len(f) >= 5 && f[1] == "requests" && f[2] == "in":
			r.requests, _ = strconv.Atoi(f[0])
		}
		if strings.Contains(line, "Non-2xx") {
			return r, fmt.Errorf("wrk saw refusals against %s: %s", target, strings.TrimSpace(line))
		}
	}
	for _, m := range wrkLine.FindAllStringSubmatch(string(out), -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		switch m[3] {
		case "us":
			v /= 1000
		case "s":
			v *= 1000
		}
		if m[1] == "50" {
			r.p50 = v
		} else {
			r.p99 = v
		}
	}
	if r.requests == 0 {
		return r, fmt.Errorf("wrk output not understood:\n%s", out)
	}
	return r, nil
}

func newClient(conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}, Timeout: 10 * time.Second}
}

func goLoad(ctx context.Context, target, header string, conns int, d time.Duration) (loadResult, error) {
	name, value, _ := strings.Cut(header, ": ")
	client := newClient(conns)
	deadline := time.Now().Add(d)
	var mu sync.Mutex
	var lat []time.Duration
	var firstErr error
	var wg sync.WaitGroup
	for range conns {
		wg.Go(func() {
			var mine []time.Duration
			for time.Now().Before(deadline) && ctx.Err() == nil {
				t0 := time.Now()
				if err := get(client, target, name, value); err != nil {
					mu.Lock()
					firstErr = cmpErr(firstErr, err)
					mu.Unlock()
					return
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	if firstErr != nil {
		return loadResult{}, firstErr
	}
	p50, p99 := percentiles(lat)
	return loadResult{requests: len(lat), rps: float64(len(lat)) / d.Seconds(), p50: p50, p99: p99}, nil
}

// fixedRate sends rate requests per second (open loop: a slow answer does not slow the sender)
// and reports latency percentiles.
func fixedRate(ctx context.Context, target, token string, rate int, d time.Duration) (loadResult, error) {
	client := newClient(64)
	interval := time.Second / time.Duration(rate)
	total := int(d / interval)
	lat := make([]time.Duration, total)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range total {
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			t0 := time.Now()
			if err := get(client, target, "Authorization", "Bearer "+token); err != nil {
				select {
				case errs <- err:
				default:
				}
				return
			}
			lat[i] = time.Since(t0)
		})
	}
	wg.Wait()
	select {
	case err := <-errs:
		return loadResult{}, err
	default:
	}
	p50, p99 := percentiles(lat)
	return loadResult{requests: total, rps: float64(rate), p50: p50, p99: p99}, nil
}

func get(client *http.Client, target, name, value string) error {
	req, err := http.NewRequest(http.MethodGet, target, nil)
	if err != nil {
		return err
	}
	req.Header.Set(name, value)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %d", target, resp.StatusCode)
	}
	return nil
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func percentiles(lat []time.Duration) (p50, p99 float64) {
	if len(lat) == 0 {
		return 0, 0
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	at := func(q float64) float64 { return float64(s[int(q*float64(len(s)-1))].Nanoseconds()) / 1e6 }
	return at(0.50), at(0.99)
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// cpuSeconds is the user+system CPU time of a process and its threads, from /proc (taskset
// execs the program, so the pid is the program's).
func cpuSeconds(pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100 // USER_HZ
}

// peakRSS is the process's high-water resident set, in MiB.
func peakRSS(pid int) float64 { return procStatusMiB(pid, "VmHWM:") }

// currentRSS is a process's resident set now, in MiB.
func currentRSS(pid int) float64 { return procStatusMiB(pid, "VmRSS:") }

// procStatusMiB reads one kB field of /proc/<pid>/status, in MiB (0 when unreadable).
func procStatusMiB(pid int, field string) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, field) {
			kb, _ := strconv.ParseFloat(strings.Fields(line)[1], 64)
			return kb / 1024
		}
	}
	return 0
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitTCP(addr string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			return c.Close()
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitHTTP(u string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		resp, err := http.Get(u)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = errors.New(resp.Status)
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(2 * time.Millisecond)
	}
}
