package e2e

import (
	"context"
	"net"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authmeshv1alpha1 "github.com/authmesh/authmesh/api/v1alpha1"
	amclient "github.com/authmesh/authmesh/client"
	"github.com/authmesh/authmesh/internal/testenv"
)

// TestTenantWithItsOwnSMTPServer: a platform team gives one tenant its own mail server with
// spec.email.smtpSecretRef. Until the Secret exists, the controller says so (EmailReady=False)
// and that tenant's logins that need a code answer EMAIL_UNAVAILABLE, never falling back to
// the platform's server; once it is applied, the codes arrive at the tenant's server.
func TestTenantWithItsOwnSMTPServer(t *testing.T) {
	relay, err := testenv.StartSMTP()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = relay.Stop() })
	host, port, _ := net.SplitHostPort(relay.Addr)

	tenant := runName("e2e-mail")
	secret := tenant + "-smtp"
	if out, err := st.kubectlRun(`apiVersion: authmesh.dev/v1alpha1
kind: Tenant
metadata:
  name: `+tenant+`
spec:
  displayName: E2E Mail
  deletionPolicy: Delete
  email: {from: no-reply@mail.example, smtpSecretRef: {name: `+secret+`}}
`, "apply", "-f", "-"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	emailReady := func() *struct{ status, reason string } {
		var tn authmeshv1alpha1.Tenant
		if err := st.api.Client.Get(t.Context(), client.ObjectKey{Name: tenant}, &tn); err != nil {
			return nil
		}
		if c := meta.FindStatusCondition(tn.Status.Conditions, "EmailReady"); c != nil {
			return &struct{ status, reason string }{string(c.Status), c.Reason}
		}
		return nil
	}
	waitFor(t, "EmailReady=False SMTPSecretNotFound", 30*time.Second, func() bool {
		c := emailReady()
		return c != nil && c.status == "False" && c.reason == "SMTPSecretNotFound"
	})

	u := signupWhenServed(t, tenant, "mia")
	platformMails := len(st.mail.Messages())
	_, err = u.c.Login(t.Context(), u.name, u.password)
	if code := amclient.ErrorCode(err); code != "EMAIL_UNAVAILABLE" {
		t.Fatalf("login while the tenant's SMTP Secret is missing: %v, want EMAIL_UNAVAILABLE", err)
	}

	if out, err := st.kubectlRun("", "-n", namespace, "create", "secret", "generic", secret,
		"--from-literal=host="+host, "--from-literal=port="+port, "--from-literal=tls=none"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	waitFor(t, "EmailReady=True TenantSMTP", 30*time.Second, func() bool {
		c := emailReady()
		return c != nil && c.status == "True" && c.reason == "TenantSMTP"
	})
	var loginID string
	waitFor(t, "the auth server to send through the tenant's server", 30*time.Second, func() bool {
		res, err := u.c.Login(t.Context(), u.name, u.password)
		if err != nil {
			return false
		}
		loginID = res.LoginID
		return true
	})
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	msg, err := relay.WaitFor(ctx, u.email, 0)
	if err != nil {
		t.Fatalf("no code at the tenant's SMTP server: %v", err)
	}
	if _, err := u.c.Verify(t.Context(), loginID, otpPattern.FindString(msg.Text)); err != nil {
		t.Fatalf("verify with the code from the tenant's server: %v", err)
	}
	if n := len(st.mail.Messages()); n != platformMails {
		t.Errorf("the platform's SMTP server received %d mails for the tenant with its own", n-platformMails)
	}
}
