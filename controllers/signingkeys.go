package controllers

import (
	"encoding/json"
	"maps"
	"slices"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/authmesh/authmesh/internal/keys"
)

// keyBook is the bookkeeping kept in the annotations of tenant-<name>-keys. Times are whole
// seconds in UTC, so what is written reads back equal.
type keyBook struct {
	ActiveSince   time.Time            // when the active key started signing
	Retired       map[string]time.Time // kid -> when it stopped signing
	RotateHandled string               // the last authmesh.dev/rotate-keys value acted on
}

// readKeyBook parses the annotations; anything unreadable reads as unset.
func readKeyBook(annotations map[string]string) keyBook {
	var b keyBook
	if t, err := time.Parse(time.RFC3339, annotations[AnnotationActiveKeySince]); err == nil {
		b.ActiveSince = t.UTC()
	}
	if raw := annotations[AnnotationRetiredKeys]; raw != "" {
		var m map[string]time.Time
		if json.Unmarshal([]byte(raw), &m) == nil {
			b.Retired = make(map[string]time.Time, len(m))
			for kid, t := range m {
				b.Retired[kid] = t.UTC()
			}
		}
	}
	b.RotateHandled = annotations[AnnotationRotateKeysHandled]
	return b
}

// annotations renders the book; keys it does not use map to "" (to be removed).
func (b keyBook) annotations() map[string]string {
	out := map[string]string{
		AnnotationActiveKeySince:    b.ActiveSince.UTC().Format(time.RFC3339),
		AnnotationRetiredKeys:       "",
		AnnotationRotateKeysHandled: b.RotateHandled,
	}
	if len(b.Retired) > 0 {
		raw, _ := json.Marshal(b.Retired) // map keys are sorted: stable output
		out[AnnotationRetiredKeys] = string(raw)
	}
	return out
}

// keyPolicy is what a Tenant's spec and annotations ask of its keys.
type keyPolicy struct {
	Algorithm     string        // spec.tokens.signingAlgorithm
	Interval      time.Duration // spec.tokens.keyRotationInterval
	AccessTTL     time.Duration // spec.tokens.accessTokenTTL
	RotateRequest string        // the authmesh.dev/rotate-keys annotation
}

// keyPlan is the key set a reconcile should leave behind, and what changed to get there.
type keyPlan struct {
	Set     *keys.PrivateSet
	Book    keyBook
	Changed bool     // Set or Book differ from what was read
	Created bool     // there was no usable set; a new one was made
	Rotated string   // a Rotation* reason, or "" when the active key stays
	Removed []string // retired kids removed because their last tokens have expired
	// Next is the time until the next rotation or removal is due.
	Next time.Duration
}

// planKeys decides the tenant's keys at now. cur is the parsed Secret (nil when missing or
// unusable). A new key is generated with gen when there is no set, when the rotation interval
// has passed since the active key started signing, when the rotate-keys annotation has a value
// not yet acted on, or when the active key's algorithm is no longer the tenant's. A key that
// stops signing stays published until one access-token TTL plus ClockSkew later, so every
// token it signed can still be verified.
func planKeys(cur *keys.PrivateSet, book keyBook, pol keyPolicy, now time.Time, gen func(alg string) (jose.JSONWebKey, error)) (keyPlan, error) {
	now = now.UTC().Truncate(time.Second)
	if cur == nil {
		k, err := gen(pol.Algorithm)
		if err != nil {
			return keyPlan{}, err
		}
		p := keyPlan{
			Set:     &keys.PrivateSet{Keys: []jose.JSONWebKey{k}, ActiveKID: k.KeyID},
			Book:    keyBook{ActiveSince: now, RotateHandled: pol.RotateRequest},
			Changed: true,
			Created: true,
		}
		p.Next = p.nextEvent(pol, now)
		return p, nil
	}

	p := keyPlan{
		Set:  &keys.PrivateSet{Keys: slices.Clone(cur.Keys), ActiveKID: cur.ActiveKID},
		Book: keyBook{ActiveSince: book.ActiveSince, Retired: maps.Clone(book.Retired), RotateHandled: book.RotateHandled},
	}
	if p.Book.Retired == nil {
		p.Book.Retired = map[string]time.Time{}
	}
	if p.Book.ActiveSince.IsZero() {
		// Bookkeeping lost: count the interval from now rather than rotate on a guess.
		p.Book.ActiveSince, p.Changed = now, true
	}
	// Every published key but the active one is retired; one without a record (added by
	// hand, or bookkeeping lost) is retired from now. Records of vanished keys are dropped.
	inSet := map[string]bool{}
	for _, k := range p.Set.Keys {
		inSet[k.KeyID] = true
		if _, ok := p.Book.Retired[k.KeyID]; !ok && k.KeyID != p.Set.ActiveKID {
			p.Book.Retired[k.KeyID], p.Changed = now, true
		}
	}
	for kid := range p.Book.Retired {
		if !inSet[kid] || kid == p.Set.ActiveKID {
			delete(p.Book.Retired, kid)
			p.Changed = true
		}
	}

	switch {
	case pol.RotateRequest != "" && pol.RotateRequest != p.Book.RotateHandled:
		p.Rotated = RotationRequested
	case p.Set.Active().Algorithm != pol.Algorithm:
		p.Rotated = RotationAlgorithmChanged
	case !now.Before(p.Book.ActiveSince.Add(pol.Interval)):
		p.Rotated = RotationScheduled
	}
	if p.Rotated != "" {
		k, err := gen(pol.Algorithm)
		if err != nil {
			return keyPlan{}, err
		}
		p.Book.Retired[p.Set.ActiveKID] = now
		p.Set.Keys = append(p.Set.Keys, k)
		p.Set.ActiveKID = k.KeyID
		p.Book.ActiveSince = now
		p.Book.RotateHandled = pol.RotateRequest
		p.Changed = true
	}

	keep := p.Set.Keys[:0]
	for _, k := range p.Set.Keys {
		if retired, ok := p.Book.Retired[k.KeyID]; ok && !now.Before(retired.Add(pol.AccessTTL+ClockSkew)) {
			p.Removed = append(p.Removed, k.KeyID)
			delete(p.Book.Retired, k.KeyID)
			p.Changed = true
			continue
		}
		keep = append(keep, k)
	}
	p.Set.Keys = keep
	if len(p.Book.Retired) == 0 {
		p.Book.Retired = nil
	}
	p.Next = p.nextEvent(pol, now)
	return p, nil
}

// nextEvent is the time from now until the next rotation or removal is due.
func (p *keyPlan) nextEvent(pol keyPolicy, now time.Time) time.Duration {
	next := p.Book.ActiveSince.Add(pol.Interval).Sub(now)
	for _, retired := range p.Book.Retired {
		if d := retired.Add(pol.AccessTTL + ClockSkew).Sub(now); d < next {
			next = d
		}
	}
	return max(next, time.Second)
}
