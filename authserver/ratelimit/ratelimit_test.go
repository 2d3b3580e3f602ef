package ratelimit

import (
	"strconv"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestParseLimit(t *testing.T) {
	cases := map[string]struct {
		want    Limit
		wantErr bool
	}{
		"10/1m":          {want: Limit{Events: 10, Per: time.Minute, Burst: 10}},
		"100/1h,burst=5": {want: Limit{Events: 100, Per: time.Hour, Burst: 5}},
		"off":            {want: Limit{}},
		"10":             {wantErr: true},
		"x/1m":           {wantErr: true},
		"10/soon":        {wantErr: true},
		"10/1m,burst=0":  {wantErr: true},
		"10/1m,bust=3":   {wantErr: true},
		"-1/1m":          {wantErr: true},
	}
	for in, tc := range cases {
		got, err := ParseLimit(in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("ParseLimit(%q) = %+v, %v; want %+v, error %v", in, got, err, tc.want, tc.wantErr)
		}
		if err == nil {
			if back, _ := ParseLimit(got.String()); back != got {
				t.Errorf("ParseLimit(%q).String() = %q does not read back", in, got.String())
			}
		}
	}
}

func TestLimiterRefusesBeyondBurstAndRefills(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	l := New(Limit{Events: 3, Per: time.Minute, Burst: 3}, 10, c.now)
	for i := range 3 {
		if ok, _ := l.Allow("ip:1"); !ok {
			t.Fatalf("request %d refused within the burst", i+1)
		}
	}
	ok, retry := l.Allow("ip:1")
	if ok || retry != 20*time.Second {
		t.Fatalf("4th request: ok=%v retryAfter=%s, want refused with 20s", ok, retry)
	}
	if ok, _ := l.Allow("ip:2"); !ok {
		t.Fatal("another key was refused: buckets are not per key")
	}
	c.t = c.t.Add(20 * time.Second)
	if ok, _ := l.Allow("ip:1"); !ok {
		t.Fatal("refused after the refill time")
	}
	if ok, _ := l.Allow("ip:1"); ok {
		t.Fatal("a refused request consumed no token, yet the next one passed early")
	}
}

func TestLimiterBoundsKeys(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	l := New(Limit{Events: 1, Per: time.Hour}, 100, c.now)
	l.Allow("hot")
	for i := range 1000 {
		l.Allow(strconv.Itoa(i))
		l.Allow("hot") // recently used keys stay
	}
	if n := l.Len(); n != 100 {
		t.Fatalf("%d keys held, want the bound 100", n)
	}
	if ok, _ := l.Allow("hot"); ok {
		t.Fatal("the recently used key was forgotten (its bucket came back full)")
	}
}

func TestOffAllowsEverything(t *testing.T) {
	l := New(Limit{}, 1, nil)
	for range 100 {
		if ok, _ := l.Allow("k"); !ok {
			t.Fatal("an off limit refused a request")
		}
	}
	var nilLimiter *Limiter
	if ok, _ := nilLimiter.Allow("k"); !ok {
		t.Fatal("a nil Limiter refused a request")
	}
}

func TestPeekTakesNothing(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	l := New(Limit{Events: 2, Per: time.Minute, Burst: 2}, 10, c.now)
	for range 5 {
		if ok, _ := l.Peek("s"); !ok {
			t.Fatal("Peek refused an unused key")
		}
	}
	l.Allow("s")
	l.Allow("s")
	ok, retry := l.Peek("s")
	if ok || retry != 30*time.Second {
		t.Fatalf("Peek of an empty bucket: ok=%v retryAfter=%s, want refused with 30s", ok, retry)
	}
	c.t = c.t.Add(30 * time.Second)
	if ok, _ := l.Peek("s"); !ok {
		t.Fatal("Peek refused after the refill time")
	}
	if ok, _ := l.Allow("s"); !ok {
		t.Fatal("the refilled token was taken by Peek")
	}
}
