package main

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
)

// sessionsBench is what authserver/sessions' BenchmarkSessions measured: per sub-benchmark,
// operations per second and p50/p99 in ms.
type sessionsBench map[string]struct{ rate, p50, p99 float64 }

var sessionsLine = regexp.MustCompile(`(?m)^BenchmarkSessions/(\S+?)(?:-\d+)?\s+\d+\s+\d+ ns/op\s+([\d.]+) ops/s\s+([\d.]+) p50-ms\s+([\d.]+) p99-ms`)

// runSessionsBench runs BenchmarkSessions (refresh and the session list over real HTTP, and the
// raw driver calls under them on the same collection, on the dev database) with go test.
func runSessionsBench(ctx context.Context, pkg string, n int) (sessionsBench, error) {
	out, err := exec.CommandContext(ctx, "go", "test", pkg, "-run", "^$", "-bench", "^BenchmarkSessions$",
		"-benchtime", strconv.Itoa(n)+"x").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("go test %s: %w\n%s", pkg, err, out)
	}
	res := sessionsBench{}
	for _, m := range sessionsLine.FindAllStringSubmatch(string(out), -1) {
		var v struct{ rate, p50, p99 float64 }
		v.rate, _ = strconv.ParseFloat(m[2], 64)
		v.p50, _ = strconv.ParseFloat(m[3], 64)
		v.p99, _ = strconv.ParseFloat(m[4], 64)
		res[m[1]] = v
	}
	for _, name := range []string{"refresh", "raw-findOneAndUpdate", "raw-findOneAndUpdate-rotation-shape", "list", "raw-find"} {
		if _, ok := res[name]; !ok {
			return nil, fmt.Errorf("BenchmarkSessions/%s missing from the output:\n%s", name, out)
		}
	}
	return res, nil
}

func (s sessionsBench) json() map[string]any {
	m := map[string]any{}
	for k, v := range s {
		m[k] = map[string]float64{"ops_per_s": v.rate, "p50_ms": v.p50, "p99_ms": v.p99}
	}
	return m
}
