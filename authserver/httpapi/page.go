package httpapi

import (
	"html/template"
	"net/http"
)

// WritePage writes an HTML page rendered from tmpl for the few routes a browser opens from a
// mailed link. Such a URL carries a token, so the page may not be framed, cached or followed
// with a Referer, and it loads nothing but its own inline style and posts only to its origin.
func WritePage(w http.ResponseWriter, status int, tmpl *template.Template, data any) error {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	w.WriteHeader(status)
	return tmpl.Execute(w, data)
}
