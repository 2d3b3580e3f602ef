package webhookcert

import (
	"crypto/x509"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestDecide covers what the Secret may hold besides the states the rotation test walks
// through: damage, a change of hosts, keys that do not match, certificates of another CA.
func TestDecide(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	opts := e2eOptions("svc.ns.svc", "10.0.0.1")
	r, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := r.decide(now, nil)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"CA created", "serving certificate issued"}, fresh.why); diff != "" {
		t.Fatalf("from nothing (-want +got):\n%s", diff)
	}
	if want := now.Add(time.Hour); !fresh.next.Equal(want) {
		t.Errorf("next due %s, want the serving certificate's renewal %s", fresh.next, want)
	}
	good := fresh.data
	other, err := r.decide(now, nil) // a second, unrelated CA and certificate
	if err != nil {
		t.Fatal(err)
	}

	with := func(kv ...any) map[string][]byte {
		d := maps.Clone(good)
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(d, kv[i].(string))
			} else {
				d[kv[i].(string)] = kv[i+1].([]byte)
			}
		}
		return d
	}
	tests := map[string]struct {
		data     map[string][]byte
		opts     func(*Options)
		wantWhy  []string
		keepsCA  bool // the current CA stays the same
		keepsCrt bool // the serving certificate stays the same
	}{
		"steady": {data: good, wantWhy: nil, keepsCA: true, keepsCrt: true},
		"garbage everywhere": {
			data:    map[string][]byte{KeyCA: []byte("x"), KeyCAKey: []byte("y"), KeyCert: []byte("z"), KeyKey: []byte("w")},
			wantWhy: []string{"CA created", "serving certificate issued"},
		},
		"serving key lost": {
			data: with(KeyKey, nil), wantWhy: []string{"serving certificate issued"}, keepsCA: true,
		},
		"serving key of another certificate": {
			data: with(KeyKey, other.data[KeyKey]), wantWhy: []string{"serving certificate issued"}, keepsCA: true,
		},
		"CA key of another CA: a new CA, the old one kept in the bundle": {
			data: with(KeyCAKey, other.data[KeyCAKey]), wantWhy: []string{"CA renewed"}, keepsCrt: true,
		},
		"serving certificate of another CA": {
			data: with(KeyCert, other.data[KeyCert], KeyKey, other.data[KeyKey]), wantWhy: []string{"serving certificate reissued: not signed by a CA in the bundle"}, keepsCA: true,
		},
		"hosts changed": {
			data: good, opts: func(o *Options) { o.Hosts = []string{"svc.ns.svc", "10.0.0.2"} },
			wantWhy: []string{"serving certificate reissued for new hosts"}, keepsCA: true,
		},
		"hosts reordered": {
			data: good, opts: func(o *Options) { o.Hosts = []string{"10.0.0.1", "svc.ns.svc"} }, keepsCA: true, keepsCrt: true,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			o := opts
			if tc.opts != nil {
				tc.opts(&o)
			}
			r, err := New(o)
			if err != nil {
				t.Fatal(err)
			}
			d, err := r.decide(now, tc.data)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.wantWhy, d.why); diff != "" {
				t.Errorf("why (-want +got):\n%s", diff)
			}
			if len(tc.wantWhy) == 0 {
				if d.data != nil {
					t.Errorf("nothing to change, yet new data")
				}
				return
			}
			got := parseMaterial(d.data)
			wasCA := parseCerts(good[KeyCA])[0]
			if keeps := got.cas[0].Equal(wasCA); keeps != tc.keepsCA {
				t.Errorf("current CA kept: %v, want %v", keeps, tc.keepsCA)
			}
			if keeps := got.leaf.Equal(parseCerts(good[KeyCert])[0]); keeps != tc.keepsCrt {
				t.Errorf("serving certificate kept: %v, want %v", keeps, tc.keepsCrt)
			}
			if !matches(got.cas[0], got.caKey) || !matches(got.leaf, got.leafKey) {
				t.Errorf("a key does not match its certificate")
			}
			if !chainsTo(got.leaf, got.cas, now) {
				t.Errorf("the serving certificate does not verify against the bundle")
			}
			if strings.Contains(strings.Join(tc.wantWhy, " "), "CA renewed") && (len(got.cas) != 2 || !got.cas[1].Equal(wasCA)) {
				t.Errorf("the replaced CA should stay in the bundle: got %d CAs", len(got.cas))
			}
			if !coversExactly(got.leaf, o.Hosts) {
				t.Errorf("serving certificate names %v %v, want %v", got.leaf.DNSNames, got.leaf.IPAddresses, o.Hosts)
			}
			if got.leaf.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth || got.leaf.IsCA || !got.cas[0].IsCA {
				t.Errorf("wrong certificate usages")
			}
		})
	}
}

// TestCARenewalDefersADueServingCertificate: when the CA and the serving certificate fall due
// in the same sync, the new CA is published first and the serving certificate, still valid,
// moves to it one sync later.
func TestCARenewalDefersADueServingCertificate(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	opts := e2eOptions("svc.ns.svc") // serving certificates due 1 h after issue, the CA after 8 h
	r, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	sequence := []struct {
		at      time.Duration
		wantWhy []string
	}{
		{0, []string{"CA created", "serving certificate issued"}},
		{7 * time.Hour, []string{"serving certificate expired: issued anew"}}, // due again at 8 h, with the CA
		{8 * time.Hour, []string{"CA renewed"}},
		{8*time.Hour + opts.ResyncInterval, []string{"serving certificate renewed"}},
	}
	var data map[string][]byte
	var next time.Time
	for i, s := range sequence {
		now := t0.Add(s.at)
		d, err := r.decide(now, data)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(s.wantWhy, d.why); diff != "" {
			t.Fatalf("at +%s (-want +got):\n%s", s.at, diff)
		}
		if i >= 2 && !next.Equal(now) { // at 8 h both are due; the deferral asks for the next sync
			t.Errorf("at +%s: the previous sync said the next was due at +%s", s.at, next.Sub(t0))
		}
		data, next = d.data, d.next
	}
	m := parseMaterial(data)
	if len(m.cas) != 2 || m.leaf.CheckSignatureFrom(m.cas[0]) != nil {
		t.Errorf("in the end: %d CAs, serving certificate signed by the new CA: %v", len(m.cas), m.leaf.CheckSignatureFrom(m.cas[0]) == nil)
	}
}

func TestOptionsValidate(t *testing.T) {
	d := DefaultOptions()
	if err := d.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if diff := cmp.Diff([]string{
		"authmesh-webhook-service.authmesh-system.svc", "authmesh-webhook-service",
		"authmesh-webhook-service.authmesh-system", "authmesh-webhook-service.authmesh-system.svc.cluster.local",
	}, d.hosts()); diff != "" {
		t.Errorf("default hosts (-want +got):\n%s", diff)
	}
	bad := DefaultOptions()
	bad.Namespace = ""
	bad.Hosts = []string{"not a host"}
	bad.WebhookConfigurations = nil
	bad.CARenewBefore = bad.CertValidity // must exceed it
	bad.CertRenewBefore = 0
	bad.ResyncInterval = 0
	err := bad.Validate()
	var got []string
	for _, line := range strings.Split(err.Error(), "\n") {
		got = append(got, strings.SplitN(line, ":", 2)[0])
	}
	want := []string{
		`webhook certificate namespace ""`,
		`webhook certificate host "not a host" is neither an IP address nor a DNS name`,
		"name at least one MutatingWebhookConfiguration to receive the CA bundle",
		"serving certificate validity 2160h0m0s and renew-before 0s",
		"CA validity 43800h0m0s and renew-before 2160h0m0s",
		"resync interval 0s",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
}
