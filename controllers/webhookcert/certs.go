package webhookcert

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"slices"
	"time"
)

// Data keys of the Secret: the layout of a kubernetes.io/tls Secret as cert-manager writes it
// (tls.crt, tls.key, ca.crt), plus the CA's private key.
const (
	KeyCert   = "tls.crt" // the serving certificate (PEM)
	KeyKey    = "tls.key" // its private key (PKCS #8 PEM)
	KeyCA     = "ca.crt"  // the CA bundle (PEM): the current CA first, then retired CAs until they expire
	KeyCAKey  = "ca.key"  // the current CA's private key (PKCS #8 PEM)
	clockSkew = time.Hour // certificates are valid from an hour before they are issued
)

// material is the Secret's content, parsed. A part that is missing or does not parse is nil.
type material struct {
	cas     []*x509.Certificate // cas[0] is the current CA when caKey matches it
	caKey   crypto.Signer
	leaf    *x509.Certificate
	leafKey crypto.Signer
}

func parseMaterial(data map[string][]byte) material {
	var m material
	m.cas = parseCerts(data[KeyCA])
	m.caKey = parseKey(data[KeyCAKey])
	if certs := parseCerts(data[KeyCert]); len(certs) > 0 {
		m.leaf = certs[0]
	}
	m.leafKey = parseKey(data[KeyKey])
	return m
}

func parseCerts(data []byte) []*x509.Certificate {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return out
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		if c, err := x509.ParseCertificate(block.Bytes); err == nil {
			out = append(out, c)
		}
	}
}

func parseKey(data []byte) crypto.Signer {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil
	}
	signer, _ := key.(crypto.Signer)
	return signer
}

// matches reports whether key is the private key of cert.
func matches(cert *x509.Certificate, key crypto.Signer) bool {
	if cert == nil || key == nil {
		return false
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(cert.PublicKey)
}

// newCA makes a self-signed CA valid from now-clockSkew to now+validity.
func newCA(now time.Time, validity time.Duration, commonName string) (*x509.Certificate, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: fmt.Sprintf("%s CA %s", commonName, now.UTC().Format("2006-01-02T15:04:05Z"))},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

// newLeaf makes a serving certificate for hosts (DNS names or IP addresses), signed by ca,
// valid from now-clockSkew until now+validity or the CA's end, whichever comes first.
func newLeaf(now time.Time, validity time.Duration, hosts []string, ca *x509.Certificate, caKey crypto.Signer) (*x509.Certificate, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, nil, err
	}
	notAfter := now.Add(validity)
	if ca.NotAfter.Before(notAfter) {
		notAfter = ca.NotAfter
	}
	dnsNames, ips := splitHosts(hosts)
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: hosts[0]},
		DNSNames:     dnsNames,
		IPAddresses:  ips,
		NotBefore:    now.Add(-clockSkew),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

func serialNumber() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
}

func splitHosts(hosts []string) (dnsNames []string, ips []net.IP) {
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
		} else {
			dnsNames = append(dnsNames, h)
		}
	}
	return dnsNames, ips
}

// coversExactly reports whether leaf names exactly hosts.
func coversExactly(leaf *x509.Certificate, hosts []string) bool {
	dnsNames, ips := splitHosts(hosts)
	got := slices.Clone(leaf.DNSNames)
	slices.Sort(got)
	want := slices.Clone(dnsNames)
	slices.Sort(want)
	if !slices.Equal(got, want) || len(leaf.IPAddresses) != len(ips) {
		return false
	}
	for _, ip := range ips {
		if !slices.ContainsFunc(leaf.IPAddresses, ip.Equal) {
			return false
		}
	}
	return true
}

// chainsTo reports whether leaf verifies, at now, against one of cas as a server certificate.
func chainsTo(leaf *x509.Certificate, cas []*x509.Certificate, now time.Time) bool {
	pool := x509.NewCertPool()
	for _, ca := range cas {
		pool.AddCert(ca)
	}
	_, err := leaf.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	return err == nil
}

func encodeCerts(certs ...*x509.Certificate) []byte {
	var buf bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return buf.Bytes()
}

func encodeKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// keyPair loads the serving certificate for a TLS server.
func keyPair(data map[string][]byte) (*tls.Certificate, error) {
	pair, err := tls.X509KeyPair(data[KeyCert], data[KeyKey])
	if err != nil {
		return nil, err
	}
	if pair.Leaf == nil {
		return nil, errors.New("no leaf certificate")
	}
	return &pair, nil
}
