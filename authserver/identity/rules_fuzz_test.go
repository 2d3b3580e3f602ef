package identity

import (
	"testing"

	authmeshv1alpha1 "github.com/authmesh/authmesh/api/v1alpha1"
	"github.com/authmesh/authmesh/authserver/httpapi"
)

// FuzzSignupRulesMatchCreateUser: whatever signup's request rules accept, CreateUser accepts
// too, so a signup is never refused after its password was hashed, nor with a 500. (The
// validator's own "email" and "e164" let through a quoted local part and a number without
// its "+".)
func FuzzSignupRulesMatchCreateUser(f *testing.F) {
	f.Add("alice", "alice@example.com", "+4915112345678", "correct horse")
	f.Add("quoted", `"ab"@example.com`, "", "password-1")
	f.Add("plusless", "x@example.com", "15551234567", "password-1")
	f.Add("named", "Ab <ab@example.com>", " +15550000001 ", "password-1")
	f.Add(" spaced ", " Alice@Example.COM ", "", "pässwörd-1")
	d := httpapi.NewDecoder()
	if err := registerRules(d); err != nil {
		f.Fatal(err)
	}
	spec := &authmeshv1alpha1.TenantSpec{Roles: []string{"user"}, DefaultRole: "user"}
	f.Fuzz(func(t *testing.T, username, email, mobile, password string) {
		in := signupRequest{Username: username, Email: email, Mobile: mobile, Password: password}
		if d.Validate(&in) != nil {
			return
		}
		nu := NewUser{Username: in.Username, Email: in.Email, Mobile: in.Mobile, Password: in.Password}
		if err := nu.validate(spec); err != nil {
			t.Fatalf("signup's rules accepted %+v, which CreateUser refuses: %v", in, err)
		}
	})
}
