package ratelimit

import (
	"container/list"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limit is a rate: Events per Per, with bursts of up to Burst. The zero Limit is off.
type Limit struct {
	Events int
	Per    time.Duration
	Burst  int
}

// Off reports whether l limits nothing.
func (l Limit) Off() bool { return l.Events <= 0 || l.Per <= 0 }

// String formats l as ParseLimit reads it.
func (l Limit) String() string {
	if l.Off() {
		return "off"
	}
	s := strconv.Itoa(l.Events) + "/" + l.Per.String()
	if l.Burst > 0 && l.Burst != l.Events {
		s += ",burst=" + strconv.Itoa(l.Burst)
	}
	return s
}

// Set implements flag.Value.
func (l *Limit) Set(s string) error {
	v, err := ParseLimit(s)
	if err != nil {
		return err
	}
	*l = v
	return nil
}

// ParseLimit reads "<events>/<period>[,burst=<n>]" or "off".
func ParseLimit(s string) (Limit, error) {
	s = strings.TrimSpace(s)
	if s == "off" || s == "0" {
		return Limit{}, nil
	}
	rateStr, burstStr, hasBurst := strings.Cut(s, ",")
	events, per, ok := strings.Cut(rateStr, "/")
	if !ok {
		return Limit{}, fmt.Errorf("rate limit %q must look like 10/1m, 10/1m,burst=20 or off", s)
	}
	var l Limit
	var err error
	if l.Events, err = strconv.Atoi(strings.TrimSpace(events)); err != nil || l.Events < 1 {
		return Limit{}, fmt.Errorf("rate limit %q: events must be a positive integer", s)
	}
	if l.Per, err = time.ParseDuration(strings.TrimSpace(per)); err != nil || l.Per <= 0 {
		return Limit{}, fmt.Errorf("rate limit %q: period must be a positive duration such as 1m", s)
	}
	l.Burst = l.Events
	if hasBurst {
		v, ok := strings.CutPrefix(strings.TrimSpace(burstStr), "burst=")
		if l.Burst, err = strconv.Atoi(v); !ok || err != nil || l.Burst < 1 {
			return Limit{}, fmt.Errorf("rate limit %q: burst must be burst=<positive integer>", s)
		}
	}
	return l, nil
}

// Limiter holds one token bucket per key, at most MaxKeys of them. It is safe for
// concurrent use.
type Limiter struct {
	limit   rate.Limit
	burst   int
	off     bool
	maxKeys int
	now     func() time.Time

	mu   sync.Mutex
	lru  *list.List // of *bucket, most recently used first
	keys map[string]*list.Element
}

type bucket struct {
	key string
	lim *rate.Limiter
}

// New returns a Limiter for l keeping at most maxKeys buckets (at least 1); now is the clock
// (time.Now when nil). Forgetting a key gives it a full bucket when it comes back.
func New(l Limit, maxKeys int, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	burst := l.Burst
	if burst < 1 {
		burst = l.Events
	}
	return &Limiter{
		limit:   rate.Limit(float64(l.Events) / l.Per.Seconds()),
		burst:   burst,
		off:     l.Off(),
		maxKeys: max(maxKeys, 1),
		now:     now,
		lru:     list.New(),
		keys:    map[string]*list.Element{},
	}
}

// Allow takes a token from key's bucket. When there is none, it returns false and how long
// until there will be one.
func (l *Limiter) Allow(key string) (ok bool, retryAfter time.Duration) {
	if l == nil || l.off {
		return true, 0
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	var b *bucket
	if el, found := l.keys[key]; found {
		l.lru.MoveToFront(el)
		b = el.Value.(*bucket)
	} else {
		if l.lru.Len() >= l.maxKeys {
			oldest := l.lru.Back()
			l.lru.Remove(oldest)
			delete(l.keys, oldest.Value.(*bucket).key)
		}
		b = &bucket{key: key, lim: rate.NewLimiter(l.limit, l.burst)}
		l.keys[key] = l.lru.PushFront(b)
	}
	r := b.lim.ReserveN(now, 1)
	if !r.OK() {
		return false, time.Duration(float64(time.Second) / float64(l.limit))
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// Peek reports whether key's bucket has a token now, without taking it, and if not, how long
// until it will. Allow takes one; Peek then Allow lets a caller charge only attempts that
// turned out to count (e.g. those that proved they hold the secret).
func (l *Limiter) Peek(key string) (ok bool, retryAfter time.Duration) {
	if l == nil || l.off {
		return true, 0
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	el, found := l.keys[key]
	if !found {
		return true, 0
	}
	tokens := el.Value.(*bucket).lim.TokensAt(now)
	if tokens >= 1 {
		return true, 0
	}
	return false, time.Duration((1 - tokens) / float64(l.limit) * float64(time.Second))
}

// Len returns how many keys are held.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lru.Len()
}
