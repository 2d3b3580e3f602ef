package password

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authmesh/authmesh/internal/testenv/heapwatch"
)

// cheap are parameters below the minimum, for tests of rehashing only.
var cheap = Params{Memory: 8 * 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

func TestHashVerifyRoundTrip(t *testing.T) {
	h, err := NewHasher(DefaultParams, 2)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	enc, err := h.Hash(ctx, "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if want := "$argon2id$v=19$m=19456,t=2,p=1$"; !strings.HasPrefix(enc, want) {
		t.Fatalf("hash %q, want the PHC prefix %q", enc, want)
	}
	for pw, want := range map[string]bool{"correct horse": true, "correct horsE": false, "": false} {
		ok, rehash, err := h.Verify(ctx, pw, enc)
		if err != nil || ok != want || rehash {
			t.Errorf("Verify(%q) = %v, %v, %v; want %v, false, nil", pw, ok, rehash, err, want)
		}
	}
	enc2, _ := h.Hash(ctx, "correct horse")
	if enc == enc2 {
		t.Error("two hashes of one password are equal: the salt is not random")
	}
}

func TestVerifyAsksForRehashOfWeakerHashes(t *testing.T) {
	weak, err := Hash("pw-12345", cheap)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := NewHasher(DefaultParams, 1)
	ok, rehash, err := h.Verify(context.Background(), "pw-12345", weak)
	if !ok || !rehash || err != nil {
		t.Fatalf("Verify(right password, weak hash) = %v, %v, %v; want true, true, nil", ok, rehash, err)
	}
	ok, rehash, _ = h.Verify(context.Background(), "wrong", weak)
	if ok || rehash {
		t.Fatalf("Verify(wrong password, weak hash) = %v, %v; want false, false (rehash only what was checked)", ok, rehash)
	}
}

func TestMalformedHashes(t *testing.T) {
	good, _ := Hash("x", DefaultParams)
	parts := strings.Split(good, "$")
	cases := map[string]string{
		"empty":           "",
		"bcrypt":          "$2a$10$abcdefghijklmnopqrstuv",
		"argon2i":         strings.Replace(good, "argon2id", "argon2i", 1),
		"other version":   strings.Replace(good, "v=19", "v=16", 1),
		"missing t":       strings.Join([]string{"", "argon2id", "v=19", "m=19456,p=1", parts[4], parts[5]}, "$"),
		"huge memory":     strings.Replace(good, "m=19456", "m=4194304", 1),
		"bad salt base64": strings.Join([]string{"", "argon2id", "v=19", parts[3], "!!!", parts[5]}, "$"),
		"short key":       strings.Join([]string{"", "argon2id", "v=19", parts[3], parts[4], "AAAA"}, "$"),
		"unknown param":   strings.Replace(good, "p=1", "p=1,x=2", 1),
	}
	for name, enc := range cases {
		t.Run(name, func(t *testing.T) {
			if _, _, err := Verify("x", enc); !errors.Is(err, ErrMalformed) {
				t.Fatalf("Verify(%q) err = %v, want ErrMalformed", enc, err)
			}
		})
	}
}

func TestNewHasherRefusesWeakParameters(t *testing.T) {
	for name, p := range map[string]Params{
		"memory below 19 MiB": {Memory: 16 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32},
		"one pass":            {Memory: 19 * 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32},
		"no lanes":            {Memory: 19 * 1024, Time: 2, Threads: 0, SaltLen: 16, KeyLen: 32},
		"short salt":          {Memory: 19 * 1024, Time: 2, Threads: 1, SaltLen: 8, KeyLen: 32},
	} {
		if _, err := NewHasher(p, 1); err == nil {
			t.Errorf("%s: NewHasher accepted %+v", name, p)
		}
	}
}

// TestHasherBoundsConcurrency proves that a hash waits while every slot is taken, runs as
// soon as one frees, and that a waiting caller gives up when its context ends.
func TestHasherBoundsConcurrency(t *testing.T) {
	h, _ := NewHasher(DefaultParams, 2)
	h.sem <- struct{}{} // two hashes in flight
	h.sem <- struct{}{}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := h.Verify(ctx, "pw", h.dummy); !errors.Is(err, context.Canceled) {
		t.Fatalf("Verify with every slot taken and a cancelled context: err = %v, want context.Canceled", err)
	}

	done := make(chan error, 1)
	go func() { _, err := h.Hash(context.Background(), "pw"); done <- err }()
	select {
	case err := <-done:
		t.Fatalf("Hash finished (err %v) while every slot was taken", err)
	default:
	}
	<-h.sem // one in-flight hash ends
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := len(h.sem); n != 1 {
		t.Fatalf("%d slots held after the waiting hash finished, want 1", n)
	}
}

// BenchmarkVerify reports the latency of one password check with DefaultParams: the cost a
// login pays for its password.
func BenchmarkVerify(b *testing.B) {
	enc, _ := Hash("correct horse battery", DefaultParams)
	b.ReportAllocs()
	for b.Loop() {
		if ok, _, err := Verify("correct horse battery", enc); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

// BenchmarkVerify100Parallel checks 100 passwords at once through a Hasher (GOMAXPROCS
// slots), as 100 simultaneous logins would, and reports the time for the batch, the mean
// latency per login and the peak Go heap while it ran: bounded by slots x 19 MiB, not
// 100 x 19 MiB.
func BenchmarkVerify100Parallel(b *testing.B) {
	h, _ := NewHasher(DefaultParams, 0)
	enc, _ := Hash("correct horse battery", DefaultParams)
	peak := heapwatch.Start(b)
	var latency atomic.Int64
	for b.Loop() {
		var wg sync.WaitGroup
		for range 100 {
			wg.Go(func() {
				start := time.Now()
				if ok, _, err := h.Verify(context.Background(), "correct horse battery", enc); !ok || err != nil {
					b.Error(ok, err)
				}
				latency.Add(int64(time.Since(start)))
			})
		}
		wg.Wait()
	}
	b.ReportMetric(float64(latency.Load())/float64(b.N*100)/1e6, "ms/login")
	b.ReportMetric(float64(peak())/(1<<20), "peak-heap-MiB")
	b.ReportMetric(float64(h.MaxConcurrent()), "slots")
}

func ExampleHasher() {
	h, _ := NewHasher(DefaultParams, 4)
	enc, _ := h.Hash(context.Background(), "s3cret-pass")
	ok, rehash, _ := h.Verify(context.Background(), "s3cret-pass", enc)
	fmt.Println(ok, rehash)
	// Output: true false
}
