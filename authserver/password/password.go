package password

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Params are argon2id's cost parameters and sizes.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes
	Threads uint8  // lanes
	SaltLen uint32 // bytes
	KeyLen  uint32 // bytes
}

// DefaultParams are OWASP's recommended minimum for argon2id: 19 MiB, 2 passes, 1 lane.
var DefaultParams = Params{Memory: 19 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}

// MinParams is the weakest configuration NewHasher accepts (OWASP's minimum).
var MinParams = DefaultParams

// Bounds on parameters read from a stored hash, so a corrupted document cannot make one
// verification take gigabytes or minutes.
const (
	maxMemory  = 1 << 20 // KiB: 1 GiB
	maxTime    = 64
	maxThreads = 64
	maxKeyLen  = 128
	maxSaltLen = 64
)

// ErrMalformed says a stored hash is not an argon2id PHC string this package can read.
var ErrMalformed = errors.New("password: malformed argon2id hash")

// Validate reports whether p is at least MinParams.
func (p Params) Validate() error {
	var errs []error
	if p.Memory < MinParams.Memory || p.Memory > maxMemory {
		errs = append(errs, fmt.Errorf("argon2id memory %d KiB must be between %d and %d", p.Memory, MinParams.Memory, maxMemory))
	}
	if p.Time < MinParams.Time || p.Time > maxTime {
		errs = append(errs, fmt.Errorf("argon2id time %d must be between %d and %d", p.Time, MinParams.Time, maxTime))
	}
	if p.Threads < 1 || p.Threads > maxThreads {
		errs = append(errs, fmt.Errorf("argon2id threads %d must be between 1 and %d", p.Threads, maxThreads))
	}
	if p.SaltLen < 16 || p.SaltLen > maxSaltLen {
		errs = append(errs, fmt.Errorf("argon2id salt length %d must be between 16 and %d", p.SaltLen, maxSaltLen))
	}
	if p.KeyLen < 16 || p.KeyLen > maxKeyLen {
		errs = append(errs, fmt.Errorf("argon2id key length %d must be between 16 and %d", p.KeyLen, maxKeyLen))
	}
	return errors.Join(errs...)
}

// weakerThan reports whether a hash made with p should be remade with cur.
func (p Params) weakerThan(cur Params) bool {
	return p.Memory < cur.Memory || p.Time < cur.Time || p.KeyLen < cur.KeyLen || p.SaltLen < cur.SaltLen
}

// Hash hashes pw with p, without any bound on concurrency: for tools and seeding. Servers use
// a Hasher.
func Hash(pw string, p Params) (string, error) {
	salt := make([]byte, p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(pw), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	return encode(p, salt, key), nil
}

// Verify checks pw against an encoded hash, without any bound on concurrency, and returns
// the parameters the hash was made with.
func Verify(pw, encoded string) (ok bool, p Params, err error) {
	p, salt, key, err := decode(encoded)
	if err != nil {
		return false, p, err
	}
	got := argon2.IDKey([]byte(pw), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	return subtle.ConstantTimeCompare(got, key) == 1, p, nil
}

func encode(p Params, salt, key []byte) string {
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(key))
}

func decode(encoded string) (p Params, salt, key []byte, err error) {
	parts := strings.Split(encoded, "$")
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, hash
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return p, nil, nil, ErrMalformed
	}
	seen := 0
	for kv := range strings.SplitSeq(parts[3], ",") {
		k, v, ok := strings.Cut(kv, "=")
		n, err := strconv.ParseUint(v, 10, 32)
		if !ok || err != nil {
			return p, nil, nil, ErrMalformed
		}
		switch k {
		case "m":
			p.Memory, seen = uint32(n), seen|1
		case "t":
			p.Time, seen = uint32(n), seen|2
		case "p":
			if n > maxThreads {
				return p, nil, nil, ErrMalformed
			}
			p.Threads, seen = uint8(n), seen|4
		default:
			return p, nil, nil, ErrMalformed
		}
	}
	b64 := base64.RawStdEncoding
	if salt, err = b64.DecodeString(parts[4]); err != nil {
		return p, nil, nil, ErrMalformed
	}
	if key, err = b64.DecodeString(parts[5]); err != nil {
		return p, nil, nil, ErrMalformed
	}
	p.SaltLen, p.KeyLen = uint32(len(salt)), uint32(len(key))
	if seen != 7 || p.Memory < 8*uint32(p.Threads) || p.Memory > maxMemory || p.Time < 1 || p.Time > maxTime ||
		p.Threads < 1 || len(salt) < 8 || len(salt) > maxSaltLen || len(key) < 16 || len(key) > maxKeyLen {
		return p, nil, nil, ErrMalformed
	}
	return p, salt, key, nil
}

// Hasher hashes and verifies passwords with the current parameters, at most MaxConcurrent at
// a time. It is safe for concurrent use.
type Hasher struct {
	params Params
	sem    chan struct{}
	dummy  string
}

// NewHasher returns a Hasher for p (at least MinParams) that runs at most maxConcurrent
// hashes at once; maxConcurrent < 1 means GOMAXPROCS (argon2id with one lane keeps one core
// busy, so more in flight would add memory, not throughput).
func NewHasher(p Params, maxConcurrent int) (*Hasher, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if maxConcurrent < 1 {
		maxConcurrent = runtime.GOMAXPROCS(0)
	}
	dummy, err := Hash("dummy password for unknown accounts", p)
	if err != nil {
		return nil, err
	}
	return &Hasher{params: p, sem: make(chan struct{}, maxConcurrent), dummy: dummy}, nil
}

// Params returns the current parameters.
func (h *Hasher) Params() Params { return h.params }

// MaxConcurrent returns how many hashes may run at once.
func (h *Hasher) MaxConcurrent() int { return cap(h.sem) }

func (h *Hasher) acquire(ctx context.Context) error {
	select {
	case h.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *Hasher) release() { <-h.sem }

// Hash hashes pw with the current parameters. It waits for a slot, or returns ctx's error.
func (h *Hasher) Hash(ctx context.Context, pw string) (string, error) {
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	defer h.release()
	return Hash(pw, h.params)
}

// Verify checks pw against encoded. rehash is set when the password is right and the hash
// was made with weaker parameters than the current ones. A malformed hash is an error.
func (h *Hasher) Verify(ctx context.Context, pw, encoded string) (ok, rehash bool, err error) {
	if err := h.acquire(ctx); err != nil {
		return false, false, err
	}
	defer h.release()
	ok, p, err := Verify(pw, encoded)
	if err != nil {
		return false, false, err
	}
	return ok, ok && p.weakerThan(h.params), nil
}

// VerifyDummy spends what Verify spends and always fails: for accounts that do not exist.
func (h *Hasher) VerifyDummy(ctx context.Context, pw string) error {
	_, _, err := h.Verify(ctx, pw, h.dummy)
	return err
}
