package controllers

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"

	"github.com/authmesh/authmesh/internal/keys"
)

// fakeKeys generates kids "k1", "k2", ... in order (with real key material).
type fakeKeys struct{ n int }

func (f *fakeKeys) gen(alg string) (jose.JSONWebKey, error) {
	k, err := keys.Generate(alg)
	f.n++
	k.KeyID = fmt.Sprintf("k%d", f.n)
	return k, err
}

func TestPlanKeys(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	pol := keyPolicy{Algorithm: keys.EdDSA, Interval: time.Hour, AccessTTL: 10 * time.Minute}
	skewed := pol.AccessTTL + ClockSkew
	type want struct {
		active  string
		kids    []string
		retired map[string]time.Time
		since   time.Time
		changed bool
		created bool
		rotated string
		removed []string
		next    time.Duration
	}
	cases := map[string]struct {
		kids    []string // existing set, "old" ones first; nil means no usable Secret
		active  string
		algs    map[string]string // kid -> algorithm, default EdDSA
		book    keyBook
		pol     keyPolicy
		now     time.Time
		want    want
		gensOld int // kids the existing set used, so new ones continue from k<gensOld+1>
	}{
		"no set: one new key": {
			now:  t0,
			want: want{active: "k1", kids: []string{"k1"}, since: t0, changed: true, created: true, next: time.Hour},
		},
		"fresh key: nothing to do until the interval": {
			kids: []string{"k1"}, active: "k1", gensOld: 1,
			book: keyBook{ActiveSince: t0},
			now:  t0.Add(20 * time.Minute),
			want: want{active: "k1", kids: []string{"k1"}, since: t0, next: 40 * time.Minute},
		},
		"interval passed: rotate, keep the old key": {
			kids: []string{"k1"}, active: "k1", gensOld: 1,
			book: keyBook{ActiveSince: t0},
			now:  t0.Add(time.Hour),
			want: want{
				active: "k2", kids: []string{"k1", "k2"}, retired: map[string]time.Time{"k1": t0.Add(time.Hour)},
				since: t0.Add(time.Hour), changed: true, rotated: RotationScheduled, next: skewed,
			},
		},
		"retired key before its tokens expire: kept": {
			kids: []string{"k1", "k2"}, active: "k2", gensOld: 2,
			book: keyBook{ActiveSince: t0, Retired: map[string]time.Time{"k1": t0}},
			now:  t0.Add(skewed - time.Second),
			want: want{active: "k2", kids: []string{"k1", "k2"}, retired: map[string]time.Time{"k1": t0}, since: t0, next: time.Second},
		},
		"retired key once its tokens expired: removed": {
			kids: []string{"k1", "k2"}, active: "k2", gensOld: 2,
			book: keyBook{ActiveSince: t0, Retired: map[string]time.Time{"k1": t0}},
			now:  t0.Add(skewed),
			want: want{active: "k2", kids: []string{"k2"}, since: t0, changed: true, removed: []string{"k1"}, next: time.Hour - skewed},
		},
		"a new rotate-keys value: rotate now": {
			kids: []string{"k1"}, active: "k1", gensOld: 1,
			book: keyBook{ActiveSince: t0, RotateHandled: "one"},
			pol:  keyPolicy{RotateRequest: "two"},
			now:  t0.Add(time.Minute),
			want: want{
				active: "k2", kids: []string{"k1", "k2"}, retired: map[string]time.Time{"k1": t0.Add(time.Minute)},
				since: t0.Add(time.Minute), changed: true, rotated: RotationRequested, next: skewed,
			},
		},
		"the rotate-keys value already acted on: nothing": {
			kids: []string{"k1"}, active: "k1", gensOld: 1,
			book: keyBook{ActiveSince: t0, RotateHandled: "two"},
			pol:  keyPolicy{RotateRequest: "two"},
			now:  t0.Add(time.Minute),
			want: want{active: "k1", kids: []string{"k1"}, since: t0, next: 59 * time.Minute},
		},
		"algorithm changed: rotate to the new one": {
			kids: []string{"k1"}, active: "k1", gensOld: 1,
			book: keyBook{ActiveSince: t0},
			pol:  keyPolicy{Algorithm: keys.ES256},
			now:  t0.Add(time.Minute),
			want: want{
				active: "k2", kids: []string{"k1", "k2"}, retired: map[string]time.Time{"k1": t0.Add(time.Minute)},
				since: t0.Add(time.Minute), changed: true, rotated: RotationAlgorithmChanged, next: skewed,
			},
		},
		"bookkeeping lost: count from now, retire strays from now": {
			kids: []string{"k1", "k2"}, active: "k2", gensOld: 2,
			now: t0,
			want: want{
				active: "k2", kids: []string{"k1", "k2"}, retired: map[string]time.Time{"k1": t0},
				since: t0, changed: true, next: skewed,
			},
		},
		"records of vanished keys are dropped": {
			kids: []string{"k2"}, active: "k2", gensOld: 2,
			book: keyBook{ActiveSince: t0, Retired: map[string]time.Time{"k1": t0}},
			now:  t0,
			want: want{active: "k2", kids: []string{"k2"}, since: t0, changed: true, next: time.Hour},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			p := pol
			if tc.pol.Algorithm != "" {
				p.Algorithm = tc.pol.Algorithm
			}
			p.RotateRequest = tc.pol.RotateRequest
			gen := &fakeKeys{}
			var cur *keys.PrivateSet
			if tc.kids != nil {
				cur = &keys.PrivateSet{ActiveKID: tc.active}
				for _, kid := range tc.kids {
					k, err := keys.Generate(keys.EdDSA)
					if err != nil {
						t.Fatal(err)
					}
					k.KeyID = kid
					cur.Keys = append(cur.Keys, k)
				}
				gen.n = tc.gensOld
			}
			before := slices.Clone(tc.kids)
			plan, err := planKeys(cur, tc.book, p, tc.now, gen.gen)
			if err != nil {
				t.Fatal(err)
			}
			got := want{
				active: plan.Set.ActiveKID, kids: kids(plan.Set), retired: plan.Book.Retired, since: plan.Book.ActiveSince,
				changed: plan.Changed, created: plan.Created, rotated: plan.Rotated, removed: plan.Removed, next: plan.Next,
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(want{})); diff != "" {
				t.Errorf("plan (-want +got):\n%s", diff)
			}
			if cur != nil && !slices.Equal(kids(cur), before) {
				t.Errorf("planKeys changed its input: kids %v, were %v", kids(cur), before)
			}
			if plan.Set.Active().Algorithm != p.Algorithm {
				t.Errorf("active key algorithm %s, want %s", plan.Set.Active().Algorithm, p.Algorithm)
			}
		})
	}
}

func TestKeyBookRoundTripsThroughAnnotations(t *testing.T) {
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	in := keyBook{ActiveSince: at, Retired: map[string]time.Time{"a": at.Add(-time.Hour), "b": at}, RotateHandled: "x"}
	if got := readKeyBook(in.annotations()); !cmp.Equal(got, in) {
		t.Errorf("round trip (-in +got):\n%s", cmp.Diff(in, got))
	}
	// Unset fields render as "" so that applySecret removes stale annotations.
	empty := keyBook{ActiveSince: at}.annotations()
	if empty[AnnotationRetiredKeys] != "" || empty[AnnotationRotateKeysHandled] != "" {
		t.Errorf("annotations of an empty book: %v", empty)
	}
	if got := readKeyBook(map[string]string{AnnotationActiveKeySince: "yesterday", AnnotationRetiredKeys: "{"}); !got.ActiveSince.IsZero() || got.Retired != nil {
		t.Errorf("garbage annotations read as %+v; want an empty book", got)
	}
}
