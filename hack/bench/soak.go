package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// soakSample is the sidecar's state at one moment of a soak.
type soakSample struct {
	At         float64 `json:"at_s"`
	RSSMiB     float64 `json:"rss_mib"`
	Goroutines int     `json:"goroutines"`
	Requests   int64   `json:"requests"`
	Errors5xx  int64   `json:"errors_5xx"`
}

// soak runs the sidecar at a fraction of its measured saturation for a long time (open loop,
// over a bounded pool of connections), sampling its RSS and goroutines, and counting 5xx
// answers and transport errors. Run it pinned to CPU 1 (make soak does), so the load generator
// does not share the sidecar's CPU.
func soak(args []string) error {
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	sidecarBin := fs.String("sidecar", "bin/sidecar", "the sidecar binary")
	proxyBin := fs.String("benchproxy", "bin/benchproxy", "the upstream and auth stub binary")
	duration := fs.Duration("duration", 10*time.Minute, "length of the soak")
	fraction := fs.Float64("load", 0.8, "fraction of the measured saturation to send")
	every := fs.Duration("sample", 10*time.Second, "sampling interval")
	conns := fs.Int("connections", 64, "connections the load generator keeps to the sidecar")
	out := fs.String("out", ".bench/soak.json", "where to write the samples")
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
	scAddr, scAdmin, token, sc := st.scAddr, st.scAdmin, st.token, st.sidecar
	target := "http://" + scAddr + "/api/orders"
	sat, err := load(ctx, target, "Authorization: Bearer "+token, 32, 5*time.Second)
	if err != nil {
		return err
	}
	rate := int(sat.rps * *fraction)
	fmt.Fprintf(os.Stderr, "soak: saturation %.0f rps; sending %d rps for %s\n", sat.rps, rate, *duration)

	var requests, errs atomic.Int64
	client := newClient(*conns) // a front proxy's pool: requests beyond it queue in the client
	interval := time.Second / time.Duration(rate)
	deadline := time.Now().Add(*duration)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 512) // bounds requests in flight if the sidecar stalls
	samples := []soakSample{}
	began := time.Now()
	sample := func() {
		samples = append(samples, soakSample{
			At: time.Since(began).Seconds(), RSSMiB: currentRSS(sc.Process.Pid),
			Goroutines: scrapeGauge("http://"+scAdmin+"/metrics", "go_goroutines"),
			Requests:   requests.Load(), Errors5xx: errs.Load(),
		})
		last := samples[len(samples)-1]
		fmt.Fprintf(os.Stderr, "soak: %5.0fs  rss %.1f MiB  goroutines %d  requests %d  5xx/errors %d\n",
			last.At, last.RSSMiB, last.Goroutines, last.Requests, last.Errors5xx)
	}
	sample()
	nextSample := time.Now().Add(*every)
	for i := 0; time.Now().Before(deadline); i++ {
		if wait := time.Until(began.Add(time.Duration(i) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		if time.Now().After(nextSample) {
			sample()
			nextSample = nextSample.Add(*every)
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			requests.Add(1)
			req, _ := http.NewRequest(http.MethodGet, target, nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := client.Do(req)
			if err != nil {
				errs.Add(1)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode >= 500 {
				errs.Add(1)
			}
		})
	}
	wg.Wait()
	sample()
	first, last := samples[1%len(samples)], samples[len(samples)-1]
	fmt.Printf("\nsoak: %s at %d rps (%.0f%% of %.0f rps saturation): %d requests, %d 5xx or transport errors\n",
		*duration, rate, *fraction*100, sat.rps, last.Requests, last.Errors5xx)
	fmt.Printf("soak: RSS %.1f MiB after the first sample, %.1f MiB at the end; goroutines %d then %d\n",
		first.RSSMiB, last.RSSMiB, first.Goroutines, last.Goroutines)
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		return err
	}
	data, _ := json.MarshalIndent(map[string]any{
		"duration_s": duration.Seconds(), "rate_rps": rate, "saturation_rps": sat.rps, "samples": samples,
	}, "", "  ")
	return os.WriteFile(*out, data, 0o644)
}

// scrapeGauge reads one unlabelled gauge from a Prometheus text exposition.
func scrapeGauge(url, name string) int {
	resp, err := http.Get(url)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return int(f)
		}
	}
	return -1
}
