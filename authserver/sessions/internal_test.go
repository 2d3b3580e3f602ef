package sessions

import (
	"context"
	"encoding/base64"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// testService is a Service with nothing behind it, for the hub's logic.
func testService(now time.Time) *Service {
	s := &Service{Now: func() time.Time { return now }, log: slog.New(slog.DiscardHandler), bg: context.Background()}
	s.feeds = newFeeds(s)
	return s
}

func entry(seq int64, exp time.Time) revocationDoc {
	return revocationDoc{ID: seq, Seq: seq, SessionID: "s" + string(rune('0'+seq)), Exp: exp.Unix(), ExpiresAt: exp.Add(30 * time.Second), At: exp}
}

func feedSeqs(t *testing.T, h *hub, after int64, now time.Time) (seqs []string, seq int64, reset, ready bool) {
	t.Helper()
	f, ready, _ := h.answer(after, now)
	for _, r := range f.Revoked {
		seqs = append(seqs, r.SessionID)
	}
	return seqs, f.Seq, f.Reset, ready
}

// TestHubHoldsBackEntriesAfterAGap: the watermark never passes a seq that is numbered but not
// visible yet, until gapTimeout gives up on it; late entries still reach full reads.
func TestHubHoldsBackEntriesAfterAGap(t *testing.T) {
	now := time.Now()
	exp := now.Add(15 * time.Minute)
	s := testService(now)
	h := newHub(s, "t")
	wall := time.Now()

	h.merge([]revocationDoc{entry(1, exp), entry(2, exp)}, wall)
	if got, seq, reset, ready := feedSeqs(t, h, 0, now); !slices.Equal(got, []string{"s1", "s2"}) || seq != 2 || reset || !ready {
		t.Fatalf("after 1,2: %v seq %d reset %v ready %v", got, seq, reset, ready)
	}
	_, _, changed := h.answer(2, now)

	h.merge([]revocationDoc{entry(4, exp)}, wall) // 3 is in flight somewhere
	if _, seq, _, ready := feedSeqs(t, h, 2, now); seq != 2 || ready {
		t.Fatalf("with 3 missing: seq %d ready %v, want the watermark held at 2", seq, ready)
	}
	select {
	case <-changed:
		t.Fatal("waiters woken although the watermark did not move")
	default:
	}
	h.merge([]revocationDoc{entry(3, exp)}, wall.Add(10*time.Millisecond))
	if got, seq, _, _ := feedSeqs(t, h, 2, now); !slices.Equal(got, []string{"s3", "s4"}) || seq != 4 {
		t.Fatalf("after 3 arrived: %v seq %d", got, seq)
	}
	select {
	case <-changed:
	default:
		t.Fatal("waiters not woken")
	}

	// 5 never arrives: 6 is held for gapTimeout, then 5 is given up.
	h.merge([]revocationDoc{entry(6, exp)}, wall)
	h.merge(nil, wall.Add(gapTimeout-time.Millisecond))
	if _, seq, _, _ := feedSeqs(t, h, 4, now); seq != 4 {
		t.Fatalf("seq %d before the gap timeout, want 4", seq)
	}
	h.merge(nil, wall.Add(gapTimeout))
	if got, seq, _, _ := feedSeqs(t, h, 4, now); !slices.Equal(got, []string{"s6"}) || seq != 6 {
		t.Fatalf("after the gap timeout: %v seq %d, want s6 at 6", got, seq)
	}
	// 5 shows up after all: a full read has it.
	h.merge([]revocationDoc{entry(5, exp)}, wall.Add(2*gapTimeout))
	if got, _, _, _ := feedSeqs(t, h, 0, now); !slices.Equal(got, []string{"s1", "s2", "s3", "s4", "s5", "s6"}) {
		t.Fatalf("full read after the late entry: %v", got)
	}

	// A cursor beyond the watermark (another history) gets the full set, reset.
	if got, seq, reset, _ := feedSeqs(t, h, 99, now); !reset || seq != 6 || len(got) != 6 {
		t.Fatalf("cursor 99: %v seq %d reset %v", got, seq, reset)
	}
	// Expired entries are not served.
	if got, _, _, _ := feedSeqs(t, h, 0, exp.Add(31*time.Second)); len(got) != 0 {
		t.Fatalf("after expiry: %v", got)
	}
}

// TestHubResetsCursorsOlderThanWhatIsKept: entries up to 10 were pruned; a cursor before
// them gets the full current set with reset: true.
func TestHubResetsCursorsOlderThanWhatIsKept(t *testing.T) {
	now := time.Now()
	exp := now.Add(time.Minute)
	h := newHub(testService(now), "t")
	h.watermark = 10
	h.merge([]revocationDoc{entry(11, exp), entry(12, exp)}, time.Now())
	if _, _, reset, _ := feedSeqs(t, h, 10, now); reset {
		t.Fatal("cursor 10 (right before what is kept) was reset")
	}
	if got, seq, reset, _ := feedSeqs(t, h, 3, now); !reset || seq != 12 || len(got) != 2 {
		t.Fatalf("cursor 3: %v seq %d reset %v, want reset with both entries", got, seq, reset)
	}
}

func TestParseRefreshToken(t *testing.T) {
	sid := uuid.NewString()
	key, _ := newTagKey()
	secret, hash, err := newSecret(key, sid, 7)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := parseRefreshToken(RefreshToken(sid, 7, secret))
	if err != nil || tok.SessionID != sid || tok.Generation != 7 || tok.hash() != hash || HashSecret(secret) != hash {
		t.Fatalf("round trip: %+v %v", tok, err)
	}
	if !tok.issuedBy(key) {
		t.Fatal("a genuine token does not verify")
	}
	other, _ := newTagKey()
	if tok.issuedBy(other) {
		t.Fatal("a token verifies with another session's key")
	}
	moved, _ := parseRefreshToken(RefreshToken(sid, 6, secret))
	if moved.issuedBy(key) {
		t.Fatal("a token verifies under another generation")
	}
	if len(secret) != 64 {
		t.Fatalf("secret has %d characters, want 64 (384 bits, 256 of them random)", len(secret))
	}
	for _, bad := range []string{
		"", ".", "..", sid, sid + ".7", sid + ".7." + secret + ".x", sid + ".+7." + secret, sid + ".07." + secret,
		sid + ".-7." + secret, sid + ".7." + secret + "=", sid + ".7." + secret[:63], strings.ToUpper(sid) + ".7." + secret,
		"{" + sid + "}.7." + secret, sid + ".99999999999999999999." + secret, sid + ".7." + strings.Repeat("A", 300),
	} {
		if _, err := parseRefreshToken(bad); err == nil {
			t.Errorf("parseRefreshToken(%q) accepted", bad)
		}
	}
}

// FuzzParseRefreshToken: parsing never panics, and what it accepts formats back to itself.
func FuzzParseRefreshToken(f *testing.F) {
	key, _ := newTagKey()
	sid := uuid.NewString()
	secret, _, _ := newSecret(key, sid, 3)
	for _, seed := range []string{RefreshToken(sid, 3, secret), sid + ".0.x", "a.b.c", "", "...", sid + ".1." + strings.Repeat("_", 64)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := parseRefreshToken(s)
		if err != nil {
			return
		}
		if RefreshToken(tok.SessionID, tok.Generation, tok.Secret) != s {
			t.Fatalf("%q parsed into %+v, which formats differently", s, tok)
		}
		// One token has one spelling: the decoder skips CR and LF, so a token with a line
		// break in its secret would otherwise pass as the token without it.
		if canonical := base64.RawURLEncoding.EncodeToString(tok.raw); tok.Secret != canonical {
			t.Fatalf("%q accepted with secret %q, which is not the canonical %q", s, tok.Secret, canonical)
		}
		_ = tok.issuedBy(key)
	})
}

// TestHubDropsPendingEntriesALoadCovered: an entry delivered before the first load finished
// must not drag the watermark back once the load has moved past it.
func TestHubDropsPendingEntriesALoadCovered(t *testing.T) {
	now := time.Now()
	exp := now.Add(time.Minute)
	h := newHub(testService(now), "t")
	wall := time.Now()
	h.merge([]revocationDoc{entry(7, exp)}, wall) // delivered while loading: 1..6 unknown yet
	h.mu.Lock()
	h.watermark, h.entries = 7, []revocationDoc{entry(6, exp), entry(7, exp)} // what the load read
	h.mu.Unlock()
	h.merge(nil, wall.Add(2*gapTimeout))
	if got, seq, _, _ := feedSeqs(t, h, 5, now); seq != 7 || !slices.Equal(got, []string{"s6", "s7"}) {
		t.Fatalf("after the load: %v seq %d, want s6 s7 at 7", got, seq)
	}
}
