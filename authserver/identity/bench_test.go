package identity_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authmesh/authmesh/authserver/identity"
	"github.com/authmesh/authmesh/authserver/password"
	"github.com/authmesh/authmesh/internal/testenv/heapwatch"
)

// BenchmarkLogin100Parallel logs 100 users in at once over real HTTP (OTP off, so each login
// checks a password with the configured argon2id parameters and starts a session on the dev
// database) and reports the mean and p95 latency of a login, and the peak Go heap of the
// process (client and server) while the batch ran. The hasher lets GOMAXPROCS hashes run at
// once, so the heap stays near slots x 19 MiB instead of 100 x 19 MiB. The dev database is
// slow and serialised: compare with BenchmarkVerify100Parallel in package password for the
// hashing alone.
func BenchmarkLogin100Parallel(b *testing.B) {
	h := startServer(b, serverOptions{tenants: map[string]string{"nootp": "  login: {otp: {enabled: false}}\n"}, rateLimits: &unlimited})
	hash, _ := password.Hash("bench-password", password.DefaultParams)
	spec := defaultSpec()
	const users = 100
	for i := range users {
		if _, err := identity.CreateUser(context.Background(), h.db("nootp"), spec, identity.NewUser{
			Username: fmt.Sprintf("bench%d", i), Email: fmt.Sprintf("bench%d@example.com", i), PasswordHash: hash,
		}); err != nil {
			b.Fatal(err)
		}
	}
	var (
		mu        sync.Mutex
		latencies []time.Duration
		failures  atomic.Int64
	)
	peak := heapwatch.Start(b)
	for b.Loop() {
		var wg sync.WaitGroup
		for i := range users {
			wg.Go(func() {
				start := time.Now()
				r, err := h.tryPost("nootp", "/auth/login", map[string]string{"usernameOrEmailOrMobile": fmt.Sprintf("bench%d", i), "password": "bench-password"})
				d := time.Since(start)
				if err != nil || r.env.Meta.Code != identity.CodeLoginSuccess {
					failures.Add(1)
					return
				}
				mu.Lock()
				latencies = append(latencies, d)
				mu.Unlock()
			})
		}
		wg.Wait()
	}
	if n := failures.Load(); n > 0 {
		b.Fatalf("%d logins failed", n)
	}
	slices.Sort(latencies)
	var sum time.Duration
	for _, d := range latencies {
		sum += d
	}
	b.ReportMetric(float64(sum.Milliseconds())/float64(len(latencies)), "ms/login")
	b.ReportMetric(float64(latencies[len(latencies)*95/100].Milliseconds()), "p95-ms/login")
	b.ReportMetric(float64(peak())/(1<<20), "peak-heap-MiB")
	b.ReportMetric(float64(h.svc.Hasher().MaxConcurrent()), "hash-slots")
}
