package guard_test

import (
	"fmt"

	"github.com/authmesh/authmesh/guard"
)

func ExampleParsePolicy() {
	p, err := guard.ParsePolicy(
		"/healthz, /public/**, GET /docs/**",
		"/admin/**=admin; POST /reports/**=manager,admin",
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(p)
	// Output:
	// public="GET /docs/**, /healthz, /public/**" roles="/admin/**=admin; POST /reports/**=manager,admin"
}

func ExampleParsePolicy_errors() {
	_, err := guard.ParsePolicy("/healthz, healthz, /a*b", "/admin/**=Admin; POST /reports/**=")
	fmt.Println(err)
	// Output:
	// public route 2 ("healthz"): expected "/path" or "METHOD /path"
	// public route 3 ("/a*b"): segment "a*b": "*" and "**" must be whole segments
	// roles rule 1 ("/admin/**=Admin"): role "Admin" is not valid: a role is 1 to 32 characters of a-z, 0-9, "_" and "-", starting with a letter
	// roles rule 2 ("POST /reports/**="): no roles listed
}

func ExamplePolicy_Decide() {
	p, err := guard.ParsePolicy(
		"/healthz, /public/**, /reports/summary",
		"/admin/**=admin; POST /reports/**=manager,admin",
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range []struct{ method, path string }{
		{"GET", "/healthz"},
		{"GET", "/public"},
		{"GET", "/orders/42"},
		{"GET", "/%61dmin/users"},
		{"POST", "/reports/summary"},
		{"GET", "/reports/summary"},
		{"GET", "/public/../admin"},
		{"GET", "/public/%2e%2e/admin"},
		{"GET", "/public%2F..%2Fadmin"},
	} {
		d := p.Decide(r.method, r.path)
		switch {
		case d.InvalidPath:
			fmt.Printf("%-4s %-22s 400 INVALID_PATH\n", r.method, r.path)
		case d.Public:
			fmt.Printf("%-4s %-22s public (%s)\n", r.method, r.path, d.Rule)
		case d.Roles != nil:
			fmt.Printf("%-4s %-22s token with role %v on %s (%s)\n", r.method, r.path, d.Roles, d.Path, d.Rule)
		default:
			fmt.Printf("%-4s %-22s token\n", r.method, r.path)
		}
	}
	// Output:
	// GET  /healthz               public (/healthz)
	// GET  /public                public (/public/**)
	// GET  /orders/42             token
	// GET  /%61dmin/users         token with role [admin] on /admin/users (/admin/**=admin)
	// POST /reports/summary       token with role [manager admin] on /reports/summary (POST /reports/**=manager,admin)
	// GET  /reports/summary       public (/reports/summary)
	// GET  /public/../admin       400 INVALID_PATH
	// GET  /public/%2e%2e/admin   400 INVALID_PATH
	// GET  /public%2F..%2Fadmin   400 INVALID_PATH
}

func ExampleDecision_Allows() {
	p, err := guard.ParsePolicy("", "POST /reports/**=manager,admin")
	if err != nil {
		fmt.Println(err)
		return
	}
	d := p.Decide("POST", "/reports/q3")
	for _, role := range []string{"admin", "manager", "user", ""} {
		fmt.Printf("%q: %v\n", role, d.Allows(role))
	}
	// Output:
	// "admin": true
	// "manager": true
	// "user": false
	// "": false
}
