package identity

import (
	"fmt"
	"strings"
	"time"

	"github.com/authmesh/authmesh/authserver/tenancy"
)

// message is one mail's subject and text, and its kind for metrics.
type message struct {
	kind, subject, text string
}

// humanDuration says 5 minutes, 1 minute, 90 seconds, 15 minutes, 2 hours.
func humanDuration(d time.Duration) string {
	plural := func(n int64, unit string) string {
		if n == 1 {
			return "1 " + unit
		}
		return fmt.Sprintf("%d %ss", n, unit)
	}
	switch {
	case d >= time.Hour && d%time.Hour == 0:
		return plural(int64(d/time.Hour), "hour")
	case d >= time.Minute && d%time.Minute == 0:
		return plural(int64(d/time.Minute), "minute")
	}
	return plural(int64(d.Round(time.Second)/time.Second), "second")
}

func clockTime(t time.Time) string { return t.UTC().Format("15:04 MST on 2 January 2006") }

// codeMessage is the mail with a login code.
func codeMessage(t *tenancy.Tenant, u *User, code string, ttl time.Duration, expires time.Time) message {
	name := t.DisplayName()
	var b strings.Builder
	fmt.Fprintf(&b, "Hello %s,\n\n", u.Username)
	fmt.Fprintf(&b, "your code to finish logging in to %s is:\n\n    %s\n\n", name, code)
	fmt.Fprintf(&b, "It expires in %s (at %s) and works only once.\n\n", humanDuration(ttl), clockTime(expires))
	b.WriteString("If you did not just try to log in, someone else knows your password: do not share this code, and change your password.\n")
	return message{kind: "otp", subject: "Your login code for " + name, text: b.String()}
}

// unlockMessage is the mail with an unlock link.
func unlockMessage(t *tenancy.Tenant, u *User, link string, failures int32, until, now time.Time) message {
	name := t.DisplayName()
	var b strings.Builder
	fmt.Fprintf(&b, "Hello %s,\n\n", u.Username)
	fmt.Fprintf(&b, "your %s account was locked after %d failed login attempts.\n\n", name, failures)
	fmt.Fprintf(&b, "It unlocks by itself at %s (in %s). To unlock it now, open this link; it works once, until then:\n\n%s\n\n",
		clockTime(until), humanDuration(until.Sub(now)), link)
	b.WriteString("If these attempts were not yours, someone may be guessing your password: change it once you are back in.\n")
	return message{kind: "unlock", subject: "Your " + name + " account is locked", text: b.String()}
}
