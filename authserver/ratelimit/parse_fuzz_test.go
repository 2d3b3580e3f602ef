package ratelimit

import "testing"

// FuzzParseLimit feeds flag and chart values to ParseLimit: a value is refused or read as a
// limit that String writes back to a value read as the same limit.
func FuzzParseLimit(f *testing.F) {
	for _, s := range []string{"10/1m", "10/1m,burst=20", " 5 / 30s , burst=1 ", "off", "0", "1/0s", "-1/1m", "10/1m,burst=", "10/1m,burst=20,burst=30", "9223372036854775807/1ns"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseLimit(s)
		if err != nil {
			return
		}
		if !l.Off() && (l.Events < 1 || l.Per <= 0 || l.Burst < 1) {
			t.Fatalf("ParseLimit(%q) = %+v: a limit that is neither off nor positive", s, l)
		}
		again, err := ParseLimit(l.String())
		if err != nil || again.Off() != l.Off() || !l.Off() && (again.Events != l.Events || again.Per != l.Per || again.Burst != l.Burst) {
			t.Fatalf("ParseLimit(%q) = %+v, written %q, read back as %+v (%v)", s, l, l.String(), again, err)
		}
		lim := New(l, 4, nil)
		if ok, _ := lim.Allow("k"); !ok {
			t.Fatalf("limit %+v refused the first event", l)
		}
		for range 3 {
			if ok, retry := lim.Allow("k"); !ok && retry <= 0 {
				t.Fatalf("limit %+v refused an event with Retry-After %s; want a positive wait", l, retry)
			}
		}
	})
}
