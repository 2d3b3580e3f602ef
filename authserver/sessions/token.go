package sessions

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"

	"github.com/google/uuid"
)

// Sizes of a refresh secret: 256 random bits followed by a 128-bit tag.
const (
	secretRandomBytes = 32
	secretTagBytes    = 16
	secretBytes       = secretRandomBytes + secretTagBytes
	tagKeyBytes       = 32
	// maxRefreshTokenLen bounds what is parsed at all.
	maxRefreshTokenLen = 256
)

// errMalformed is a refresh token that is not <uuid>.<generation>.<secret>.
var errMalformed = errors.New("sessions: malformed refresh token")

// refreshToken is a parsed refresh token.
type refreshToken struct {
	SessionID  string
	Generation int64
	Secret     string // as sent: base64url of random || tag
	raw        []byte // decoded secret
}

// RefreshToken formats a refresh token.
func RefreshToken(sid string, generation int64, secret string) string {
	return sid + "." + strconv.FormatInt(generation, 10) + "." + secret
}

// parseRefreshToken splits a refresh token into its parts. Only the canonical form is
// accepted: a lower-case UUID, a decimal generation without sign or leading zeros, and a
// secret of exactly secretBytes in unpadded base64url.
func parseRefreshToken(s string) (refreshToken, error) {
	if len(s) > maxRefreshTokenLen {
		return refreshToken{}, errMalformed
	}
	sid, rest, ok := strings.Cut(s, ".")
	if !ok {
		return refreshToken{}, errMalformed
	}
	genText, secret, ok := strings.Cut(rest, ".")
	if !ok {
		return refreshToken{}, errMalformed
	}
	if u, err := uuid.Parse(sid); err != nil || u.String() != sid {
		return refreshToken{}, errMalformed
	}
	gen, err := strconv.ParseInt(genText, 10, 64)
	if err != nil || gen < 0 || strconv.FormatInt(gen, 10) != genText {
		return refreshToken{}, errMalformed
	}
	// Strict refuses non-zero padding bits and the length check a short secret; refusing CR
	// and LF, which the decoder skips, leaves every secret one spelling.
	raw, err := base64.RawURLEncoding.Strict().DecodeString(secret)
	if err != nil || len(raw) != secretBytes || strings.ContainsAny(secret, "\r\n") {
		return refreshToken{}, errMalformed
	}
	return refreshToken{SessionID: sid, Generation: gen, Secret: secret, raw: raw}, nil
}

// newTagKey returns a fresh per-session tag key.
func newTagKey() (string, error) {
	b := make([]byte, tagKeyBytes)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// newSecret returns the secret of generation gen of session sid and the hash stored in its
// place.
func newSecret(tagKey, sid string, gen int64) (secret, hash string, err error) {
	random, hash, err := newRandom()
	if err != nil {
		return "", "", err
	}
	secret, err = sealSecret(tagKey, sid, gen, random)
	return secret, hash, err
}

// newRandom returns the random part of a new secret and its stored hash.
func newRandom() (random []byte, hash string, err error) {
	random = make([]byte, secretRandomBytes)
	if _, err := rand.Read(random); err != nil {
		return nil, "", err
	}
	return random, hashRandom(random), nil
}

// sealSecret appends the tag of (sid, gen, random) and encodes the secret as it travels.
func sealSecret(tagKey, sid string, gen int64, random []byte) (string, error) {
	tag, err := secretTag(tagKey, sid, gen, random)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(append(append(make([]byte, 0, secretBytes), random...), tag...)), nil
}

// secretTag authenticates (sid, gen, random) with the session's tag key.
func secretTag(tagKey, sid string, gen int64, random []byte) ([]byte, error) {
	key, err := base64.RawURLEncoding.DecodeString(tagKey)
	if err != nil || len(key) != tagKeyBytes {
		return nil, errors.New("sessions: session has no usable tag key")
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte("authmesh refresh v1\x00" + sid + "\x00" + strconv.FormatInt(gen, 10) + "\x00"))
	m.Write(random)
	return m.Sum(nil)[:secretTagBytes], nil
}

// issuedBy reports whether the session with this tag key issued tok: true for every
// generation the server ever handed out, false for a forgery.
func (tok refreshToken) issuedBy(tagKey string) bool {
	want, err := secretTag(tagKey, tok.SessionID, tok.Generation, tok.raw[:secretRandomBytes])
	return err == nil && hmac.Equal(want, tok.raw[secretRandomBytes:])
}

// HashSecret is the stored form of a refresh secret as it appears in a token: the hex SHA-256
// of its random part. The tag is left out so a rotation can store the next hash before it
// has read the session's tag key.
func HashSecret(secret string) string {
	raw, err := base64.RawURLEncoding.Strict().DecodeString(secret)
	if err != nil || len(raw) != secretBytes {
		return hashRandom([]byte(secret)) // matches no stored hash of a real secret
	}
	return hashRandom(raw[:secretRandomBytes])
}

func hashRandom(random []byte) string {
	sum := sha256.Sum256(random)
	return hex.EncodeToString(sum[:])
}

// hash is the stored form of tok's secret.
func (tok refreshToken) hash() string { return hashRandom(tok.raw[:secretRandomBytes]) }

// hashEqual compares two stored hashes in constant time.
func hashEqual(a, b string) bool {
	return len(a) == len(b) && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
