package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

func mustGenerate(t *testing.T, alg string) jose.JSONWebKey {
	t.Helper()
	k, err := Generate(alg)
	if err != nil {
		t.Fatalf("Generate(%s): %v", alg, err)
	}
	return k
}

func TestGeneratedKeysRoundTripAndVerify(t *testing.T) {
	for _, alg := range []string{EdDSA, ES256} {
		t.Run(alg, func(t *testing.T) {
			old, active := mustGenerate(t, alg), mustGenerate(t, alg)
			if old.KeyID == active.KeyID || active.KeyID == "" {
				t.Fatalf("kids %q and %q: want distinct, non-empty", old.KeyID, active.KeyID)
			}
			data, err := (&PrivateSet{Keys: []jose.JSONWebKey{old, active}, ActiveKID: active.KeyID}).MarshalJWKS()
			if err != nil {
				t.Fatal(err)
			}
			set, err := ParsePrivateSet(data, active.KeyID)
			if err != nil {
				t.Fatalf("ParsePrivateSet of what MarshalJWKS wrote: %v", err)
			}
			signer, kid, gotAlg, err := set.Signer()
			if err != nil || kid != active.KeyID || gotAlg != alg {
				t.Fatalf("Signer() = kid %q alg %q err %v; want %q %q", kid, gotAlg, err, active.KeyID, alg)
			}

			pubDoc, err := set.PublicJWKS()
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(pubDoc), `"d"`) {
				t.Fatalf("public JWKS leaks a private part: %s", pubDoc)
			}
			pub, err := ParsePublicSet(pubDoc)
			if err != nil {
				t.Fatal(err)
			}
			if len(pub) != 2 {
				t.Fatalf("public set has %d keys, want 2", len(pub))
			}
			msg := []byte("header.payload")
			if !verify(t, alg, signer, pub[kid].Key, msg) {
				t.Fatal("a signature by the active key does not verify with its published key")
			}
			if verify(t, alg, signer, pub[old.KeyID].Key, msg) {
				t.Fatal("a signature by the active key verifies with another key")
			}
		})
	}
}

func verify(t *testing.T, alg string, signer crypto.Signer, pub crypto.PublicKey, msg []byte) bool {
	t.Helper()
	switch alg {
	case EdDSA:
		sig, err := signer.Sign(rand.Reader, msg, crypto.Hash(0))
		if err != nil {
			t.Fatal(err)
		}
		return ed25519.Verify(pub.(ed25519.PublicKey), msg, sig)
	default:
		digest := sha256.Sum256(msg)
		sig, err := signer.Sign(rand.Reader, digest[:], crypto.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		return ecdsa.VerifyASN1(pub.(*ecdsa.PublicKey), digest[:], sig)
	}
}

func TestParsePrivateSetRefusesBadSets(t *testing.T) {
	ed := mustGenerate(t, EdDSA)
	es := mustGenerate(t, ES256)
	mislabelled := ed
	mislabelled.Algorithm = ES256
	noKID := ed
	noKID.KeyID = ""
	encUse := ed
	encUse.Use = "enc"
	marshal := func(keys ...jose.JSONWebKey) []byte {
		b, err := json.Marshal(jose.JSONWebKeySet{Keys: keys})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cases := map[string]struct {
		jwks   []byte
		active string
		want   string
	}{
		"not JSON":             {[]byte("{"), ed.KeyID, "not a JWK Set"},
		"no keys":              {[]byte(`{"keys":[]}`), ed.KeyID, "holds no keys"},
		"active kid missing":   {marshal(ed), "nope", `names no key`},
		"duplicate kid":        {marshal(ed, ed), ed.KeyID, "appears twice"},
		"public key only":      {marshal(ed.Public()), ed.KeyID, "not a private EdDSA key"},
		"algorithm mismatch":   {marshal(mislabelled), ed.KeyID, "not a private ES256 key"},
		"missing kid":          {marshal(noKID, es), es.KeyID, "no kid"},
		"encryption key":       {marshal(encUse), ed.KeyID, `use "enc"`},
		"unsupported alg word": {[]byte(strings.Replace(string(marshal(ed)), `"EdDSA"`, `"none"`, 1)), ed.KeyID, `algorithm "none"`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := ParsePrivateSet(tc.jwks, tc.active)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestParsePublicSetSkipsKeysAVerifierMustNotUse(t *testing.T) {
	ed := mustGenerate(t, EdDSA)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rs := jose.JSONWebKey{Key: rsaKey.Public(), KeyID: "rsa", Algorithm: "RS256", Use: "sig"}
	hmac := jose.JSONWebKey{Key: []byte("secret"), KeyID: "hs", Algorithm: "HS256", Use: "sig"}
	doc, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{ed.Public(), rs, hmac}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParsePublicSet(doc)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[ed.KeyID].Algorithm != EdDSA {
		t.Fatalf("ParsePublicSet kept %v; want only the EdDSA key", got)
	}
	if _, isPriv := got[ed.KeyID].Key.(ed25519.PrivateKey); isPriv {
		t.Fatal("a verification key is private")
	}
}

func TestGenerateRefusesUnknownAlgorithm(t *testing.T) {
	if _, err := Generate("HS256"); err == nil {
		t.Fatal("Generate(HS256) succeeded; want an error")
	}
}

func FuzzParsePublicSet(f *testing.F) {
	k, err := Generate(EdDSA)
	if err != nil {
		f.Fatal(err)
	}
	doc, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{k.Public()}})
	f.Add(doc)
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","alg":"ES256","kid":"x","x":"","y":""}]}`))
	f.Add([]byte(`{"keys":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := ParsePublicSet(data)
		if err != nil {
			return
		}
		for kid, k := range keys {
			if kid == "" || k.ID != kid || (k.Algorithm != EdDSA && k.Algorithm != ES256) {
				t.Fatalf("ParsePublicSet accepted key %q: %+v", kid, k)
			}
			switch k.Key.(type) {
			case ed25519.PublicKey, *ecdsa.PublicKey:
			default:
				t.Fatalf("key %q has type %T", kid, k.Key)
			}
		}
	})
}
