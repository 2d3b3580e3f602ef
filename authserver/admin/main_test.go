package admin_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/authmesh/authmesh/client"
	"github.com/authmesh/authmesh/internal/tenantdb"
	"github.com/authmesh/authmesh/internal/testenv"
	"github.com/authmesh/authmesh/internal/testenv/authstack"
)

var testDB *testenv.Mongo

func TestMain(m *testing.M) { os.Exit(testenv.RunWithMongo(m, &testDB)) }

const tenantSpec = "  displayName: Darmist One\n  email: {from: no-reply@darmist.example}\n"

func start(t *testing.T, tenants ...string) *authstack.Stack {
	t.Helper()
	if len(tenants) == 0 {
		tenants = []string{"darmist1"}
	}
	specs := map[string]string{}
	for _, name := range tenants {
		specs[name] = tenantSpec
	}
	return authstack.Start(t, testDB, authstack.Options{Tenants: specs})
}

// member is a signed-up user with a session.
type member struct {
	user     *client.User
	password string
	tokens   *client.TokenPair
}

// join signs up a user of role in tenant (the role written to the database, as an operator
// or the bootstrap admin would give it) and logs them in.
func join(t *testing.T, s *authstack.Stack, tenant, name, role string) member {
	t.Helper()
	pw := "password of " + name
	u := s.Signup(tenant, name, name+"@example.com", pw)
	if role != "user" {
		if _, err := s.DB(tenant).Collection(tenantdb.Users).UpdateByID(context.Background(), u.ID,
			bson.D{{Key: "$set", Value: bson.D{{Key: "role", Value: role}}}}); err != nil {
			t.Fatal(err)
		}
		u.Role = role
	}
	return member{user: u, password: pw, tokens: s.Login(tenant, name, pw, name+"@example.com")}
}

// login starts another session of m.
func (m member) login(s *authstack.Stack, tenant string) *client.TokenPair {
	return s.Login(tenant, m.user.Username, m.password, m.user.Email)
}

// wantCode fails the test unless err is an *client.APIError with this status and code.
func wantCode(t testing.TB, what string, err error, status int, code string) *client.APIError {
	t.Helper()
	var e *client.APIError
	if !errors.As(err, &e) {
		t.Fatalf("%s: err = %v, want %d %s", what, err, status, code)
	}
	if e.Status != status || e.Code != code {
		t.Fatalf("%s: got %d %s (%q, details %s), want %d %s", what, e.Status, e.Code, e.Message, e.Details, status, code)
	}
	return e
}

// roleOf reads the role claim of an access token (no verification: the server verified it).
func roleOf(t testing.TB, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", token)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		Role string `json:"role"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	return claims.Role
}

func ptr[T any](v T) *T { return &v }
