package password

import (
	"errors"
	"strings"
	"testing"
)

// FuzzDecode feeds stored hashes to the parser Verify trusts: a hash either fails with
// ErrMalformed or has parameters within the bounds that keep a verification affordable,
// and encodes back to a hash that decodes to the same.
func FuzzDecode(f *testing.F) {
	good, err := Hash("correct horse", MinParams)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(strings.Replace(good, "t=", "t=99999999999,x=", 1))
	f.Add("$argon2id$v=19$m=4294967295,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5")
	f.Add("$argon2id$v=19$m=64,m=64,t=1,p=255$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5")
	f.Add("$2b$10$abcdefghijklmnopqrstuv")
	f.Fuzz(func(t *testing.T, encoded string) {
		p, salt, key, err := decode(encoded)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("decode(%q) = %v; want ErrMalformed", encoded, err)
			}
			return
		}
		if p.Memory > maxMemory || p.Time < 1 || p.Time > maxTime || p.Threads < 1 || p.Threads > maxThreads ||
			len(salt) < 8 || len(salt) > maxSaltLen || len(key) < 16 || len(key) > maxKeyLen {
			t.Fatalf("decode(%q) accepted parameters %+v (salt %d, key %d bytes) outside the bounds", encoded, p, len(salt), len(key))
		}
		p2, salt2, key2, err := decode(encode(p, salt, key))
		if err != nil || p2 != p || string(salt2) != string(salt) || string(key2) != string(key) {
			t.Fatalf("decode(encode(decode(%q))) = %+v, %v; want the same parameters, salt and key", encoded, p2, err)
		}
	})
}
