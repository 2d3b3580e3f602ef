package account

import (
	"fmt"
	"strings"
	"time"

	"github.com/authmesh/authmesh/authserver/identity"
	"github.com/authmesh/authmesh/authserver/tenancy"
)

// message is one mail's subject and text, and its kind for metrics.
type message struct {
	kind, subject, text string
}

// Mail kinds, the label values of authmesh_authserver_account_mails_total.
const (
	kindResetMail       = "reset"
	kindSetPasswordMail = "set_password"
)

// humanDuration says 30 minutes, 1 hour, 3 days.
func humanDuration(d time.Duration) string {
	plural := func(n int64, unit string) string {
		if n == 1 {
			return "1 " + unit
		}
		return fmt.Sprintf("%d %ss", n, unit)
	}
	switch {
	case d >= 24*time.Hour && d%(24*time.Hour) == 0:
		return plural(int64(d/(24*time.Hour)), "day")
	case d >= time.Hour && d%time.Hour == 0:
		return plural(int64(d/time.Hour), "hour")
	}
	return plural(int64(d.Round(time.Minute)/time.Minute), "minute")
}

func clockTime(t time.Time) string { return t.UTC().Format("15:04 MST on 2 January 2006") }

// resetMessage is the mail with a forgot-password link.
func resetMessage(t *tenancy.Tenant, u *identity.User, link string, ttl time.Duration, expires time.Time) message {
	name := t.DisplayName()
	var b strings.Builder
	fmt.Fprintf(&b, "Hello %s,\n\n", u.Username)
	fmt.Fprintf(&b, "someone asked to reset the password of your %s account. To choose a new password, open this link; it works once, for %s (until %s):\n\n%s\n\n",
		name, humanDuration(ttl), clockTime(expires), link)
	b.WriteString("Every device signed in to your account will be signed out.\n\n")
	b.WriteString("If you did not ask for this, ignore this mail: your password stays as it is.\n")
	return message{kind: kindResetMail, subject: "Reset your " + name + " password", text: b.String()}
}

// setPasswordMessage is the mail to a tenant's bootstrap admin.
func setPasswordMessage(t *tenancy.Tenant, u *identity.User, link string, ttl time.Duration, expires time.Time) message {
	name := t.DisplayName()
	var b strings.Builder
	fmt.Fprintf(&b, "Hello,\n\nan administrator account was created for you in %s. Your username is %s.\n\n", name, u.Username)
	fmt.Fprintf(&b, "To set its password, open this link; it works once, for %s (until %s):\n\n%s\n\n", humanDuration(ttl), clockTime(expires), link)
	b.WriteString("When it has expired, use \"forgot password\" with your email address to get a new one.\n")
	return message{kind: kindSetPasswordMail, subject: "Set your " + name + " administrator password", text: b.String()}
}
