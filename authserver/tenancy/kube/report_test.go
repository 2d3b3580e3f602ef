package kube

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	authmeshv1alpha1 "github.com/authmesh/authmesh/api/v1alpha1"
	"github.com/authmesh/authmesh/authserver/tenancy"
)

// lastSink keeps the last Config it was given.
type lastSink struct{ cfg tenancy.Config }

func (s *lastSink) Upsert(c tenancy.Config) { s.cfg = c }
func (s *lastSink) Delete(string)           {}
func (s *lastSink) Synced()                 {}

// failingReader fails every read while down is set, as an API server that cannot be reached.
type failingReader struct {
	client.Reader
	down bool
}

func (r *failingReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if r.down {
		return errors.New("connection refused")
	}
	return r.Reader.Get(ctx, key, obj, opts...)
}

// TestSMTPSecretReadFailureKeepsTheLastServer is a unit test of report's handling of the SMTP
// Secret, over controller-runtime's in-memory client (the envtest suite covers the watch): a
// failed read keeps what the Secret read as last and asks for a retry; a missing Secret is
// an error at once, with no retry (its creation is watched).
func TestSMTPSecretReadFailureKeepsTheLastServer(t *testing.T) {
	s, err := NewSource(Options{Config: &rest.Config{Host: "http://127.0.0.1:1"}, Namespace: "authmesh-system", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	tenant := &authmeshv1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: "acme"}}
	tenant.Spec.Email.SMTPSecretRef.Name = "acme-smtp"
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "authmesh-system", Name: "acme-smtp"},
		Data: map[string][]byte{"host": []byte("smtp.acme.example")}}
	c := fake.NewClientBuilder().WithScheme(s.scheme).WithObjects(tenant, secret).Build()
	direct := &failingReader{Reader: c}
	sink := &lastSink{}
	ctx := context.Background()

	if retry := s.report(ctx, c, direct, sink, "acme"); retry || sink.cfg.SMTP == nil || sink.cfg.SMTP.Host != "smtp.acme.example" || sink.cfg.SMTPErr != nil {
		t.Fatalf("first report: retry %v, SMTP %+v, error %v; want the Secret's server", retry, sink.cfg.SMTP, sink.cfg.SMTPErr)
	}
	direct.down = true
	if retry := s.report(ctx, c, direct, sink, "acme"); !retry || sink.cfg.SMTP == nil || sink.cfg.SMTPErr != nil {
		t.Fatalf("report with the API server down: retry %v, SMTP %+v, error %v; want the last server kept and a retry", retry, sink.cfg.SMTP, sink.cfg.SMTPErr)
	}
	direct.down = false
	if err := c.Delete(ctx, secret); err != nil {
		t.Fatal(err)
	}
	if retry := s.report(ctx, c, direct, sink, "acme"); retry || sink.cfg.SMTP != nil || sink.cfg.SMTPErr == nil || !strings.Contains(sink.cfg.SMTPErr.Error(), "does not exist") {
		t.Fatalf("report after the Secret was deleted: retry %v, SMTP %+v, error %v; want does not exist, no retry", retry, sink.cfg.SMTP, sink.cfg.SMTPErr)
	}
	direct.down = true
	if retry := s.report(ctx, c, direct, sink, "acme"); !retry || sink.cfg.SMTPErr == nil || !strings.Contains(sink.cfg.SMTPErr.Error(), "does not exist") {
		t.Fatalf("a failed read after a missing Secret: retry %v, error %v; want the last answer (does not exist) and a retry", retry, sink.cfg.SMTPErr)
	}
}
