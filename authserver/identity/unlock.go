package identity

import (
	"errors"
	"html/template"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/authmesh/authmesh/authserver/httpapi"
)

// unlockGet unlocks for clients that ask for JSON, and shows browsers a confirmation page
// whose form POSTs the token (a GET from a mail scanner changes nothing).
func (s *Service) unlockGet(w http.ResponseWriter, r *http.Request) error {
	token := r.URL.Query().Get("token")
	if !wantsHTML(r) {
		return s.unlockJSON(w, r, token)
	}
	if _, ok := ParseAccountToken(strings.TrimSpace(token)); !ok {
		return writePage(w, http.StatusBadRequest, page{Title: "Invalid link", Text: errInvalidUnlockToken().Message})
	}
	return writePage(w, http.StatusOK, page{
		Title: "Unlock your account",
		Text:  "Your account was locked after too many failed login attempts. Unlock it now?",
		Token: token,
	})
}

// unlockPost unlocks with {token} as JSON, or with the confirmation page's form.
func (s *Service) unlockPost(w http.ResponseWriter, r *http.Request) error {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/x-www-form-urlencoded" {
		var in unlockRequest
		if err := s.decoder.Decode(r, &in); err != nil {
			return err
		}
		return s.unlockJSON(w, r, in.Token)
	}
	if err := r.ParseForm(); err != nil {
		return writePage(w, http.StatusBadRequest, page{Title: "Invalid request", Text: "The form could not be read."})
	}
	err := s.unlock(r.Context(), r.PostForm.Get("token"))
	var he *httpapi.Error
	switch {
	case err == nil:
		return writePage(w, http.StatusOK, page{Title: "Account unlocked", Text: "Your account is unlocked. You can log in again."})
	case errors.As(err, &he) && he.Status < 500:
		for k, vs := range he.Header {
			w.Header()[k] = vs
		}
		return writePage(w, he.Status, page{Title: "Not unlocked", Text: he.Message})
	}
	return err
}

func (s *Service) unlockJSON(w http.ResponseWriter, r *http.Request, token string) error {
	if token == "" || len(token) > 512 {
		return errInvalidUnlockToken()
	}
	if err := s.unlock(r.Context(), token); err != nil {
		return err
	}
	return httpapi.WriteSuccess(w, r, http.StatusOK, CodeAccountUnlocked, "Account unlocked. You can log in again.", nil)
}

// wantsHTML reports whether r's Accept header prefers HTML to JSON (browsers do; */* alone,
// as curl sends, means JSON).
func wantsHTML(r *http.Request) bool {
	var htmlQ, jsonQ float64
	for _, v := range r.Header.Values("Accept") {
		for part := range strings.SplitSeq(v, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil {
				continue
			}
			q := 1.0
			if s, ok := params["q"]; ok {
				if f, err := strconv.ParseFloat(s, 64); err == nil {
					q = f
				}
			}
			switch mt {
			case "text/html", "application/xhtml+xml":
				htmlQ = max(htmlQ, q)
			case "application/json", "application/*", "*/*":
				jsonQ = max(jsonQ, q)
			}
		}
	}
	return htmlQ > jsonQ
}

type page struct {
	Title, Text, Token string
}

var pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{{.Title}}</title>
<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;line-height:1.5}button{font-size:1rem;padding:.5rem 1.25rem}</style>
</head>
<body>
<h1>{{.Title}}</h1>
<p>{{.Text}}</p>
{{if .Token}}<form method="post" action="unlock">
<input type="hidden" name="token" value="{{.Token}}">
<button type="submit">Unlock my account</button>
</form>{{end}}
</body>
</html>
`))

// writePage writes one of the package's pages (httpapi.WritePage: no framing, caching or Referer).
func writePage(w http.ResponseWriter, status int, p page) error {
	return httpapi.WritePage(w, status, pageTemplate, p)
}
