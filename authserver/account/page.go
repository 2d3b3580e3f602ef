package account

import (
	"errors"
	"html/template"
	"mime"
	"net/http"
	"unicode/utf8"

	"github.com/authmesh/authmesh/authserver/httpapi"
	"github.com/authmesh/authmesh/authserver/identity"
)

// Password rules of the form, the same as the JSON routes' (and signup's).
const (
	minPasswordLen = 8
	maxPasswordLen = 128
)

// resetGet serves a mailed reset link. A browser (Accept prefers HTML) gets a small form that
// POSTs the new password with the token; a mail scanner following the link changes nothing.
// A JSON client learns whether the token is still good (RESET_TOKEN_VALID {expiresAt}).
func (s *Service) resetGet(w http.ResponseWriter, r *http.Request) error {
	token := r.URL.Query().Get("token")
	if len(token) > 512 {
		token = ""
	}
	expires, err := s.peek(r.Context(), token)
	if !identity.WantsHTML(r) {
		if err != nil {
			return err
		}
		return httpapi.WriteSuccess(w, r, http.StatusOK, CodeResetTokenValid, "The password reset link is valid.",
			map[string]string{"expiresAt": httpapi.Timestamp(expires)})
	}
	if err != nil {
		return s.errorPage(w, r, err)
	}
	return writePage(w, http.StatusOK, page{Title: "Choose a new password", Token: token,
		Text: "Enter a new password for your account. Every device signed in to it will be signed out."})
}

// resetPost resets with {token, newPassword} as JSON, or with the form of resetGet's page.
func (s *Service) resetPost(w http.ResponseWriter, r *http.Request) error {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/x-www-form-urlencoded" {
		var in resetRequest
		if err := s.decoder.Decode(r, &in); err != nil {
			return err
		}
		if err := s.reset(r.Context(), in.Token, in.NewPassword); err != nil {
			return err
		}
		return httpapi.WriteSuccess(w, r, http.StatusOK, CodePasswordReset,
			"Your password has been reset. Every session has been signed out; log in with the new password.", nil)
	}
	if err := r.ParseForm(); err != nil {
		return writePage(w, http.StatusBadRequest, page{Title: "Invalid request", Text: "The form could not be read."})
	}
	token, pw := r.PostForm.Get("token"), r.PostForm.Get("newPassword")
	if token == "" || len(token) > 512 {
		return s.errorPage(w, r, errInvalidResetToken())
	}
	again := page{Title: "Choose a new password", Token: token, Text: "Enter a new password for your account."}
	switch n := utf8.RuneCountInString(pw); {
	case n < minPasswordLen || n > maxPasswordLen:
		again.Error = "The password must have 8 to 128 characters."
		return writePage(w, http.StatusBadRequest, again)
	case pw != r.PostForm.Get("confirmPassword"):
		again.Error = "The two passwords differ."
		return writePage(w, http.StatusBadRequest, again)
	}
	if err := s.reset(r.Context(), token, pw); err != nil {
		return s.errorPage(w, r, err)
	}
	return writePage(w, http.StatusOK, page{Title: "Password set",
		Text: "Your new password is set and every session was signed out. You can log in with it now."})
}

// errorPage shows a refusal (4xx) as a page; anything else is the usual error answer.
func (s *Service) errorPage(w http.ResponseWriter, _ *http.Request, err error) error {
	var he *httpapi.Error
	if !errors.As(err, &he) || he.Status >= 500 {
		return err
	}
	for k, vs := range he.Header {
		w.Header()[k] = vs
	}
	return writePage(w, he.Status, page{Title: "Password not reset", Text: he.Message})
}

type page struct {
	Title, Text, Error, Token string
}

var pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{{.Title}}</title>
<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;line-height:1.5}label{display:block;margin:.75rem 0 .25rem}input{font-size:1rem;padding:.4rem;width:100%;box-sizing:border-box}button{font-size:1rem;padding:.5rem 1.25rem;margin-top:1rem}.error{color:#a00}</style>
</head>
<body>
<h1>{{.Title}}</h1>
<p>{{.Text}}</p>
{{if .Error}}<p class="error" role="alert">{{.Error}}</p>{{end}}
{{if .Token}}<form method="post" action="reset">
<input type="hidden" name="token" value="{{.Token}}">
<label for="newPassword">New password</label>
<input type="password" id="newPassword" name="newPassword" autocomplete="new-password" minlength="8" maxlength="128" required>
<label for="confirmPassword">New password again</label>
<input type="password" id="confirmPassword" name="confirmPassword" autocomplete="new-password" minlength="8" maxlength="128" required>
<button type="submit">Set password</button>
</form>{{end}}
</body>
</html>
`))

// writePage writes one of the package's pages (httpapi.WritePage: no framing, caching or Referer).
func writePage(w http.ResponseWriter, status int, p page) error {
	return httpapi.WritePage(w, status, pageTemplate, p)
}
