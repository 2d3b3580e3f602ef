package httpapi_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/authmesh/authmesh/authserver/httpapi"
)

type signupRequest struct {
	Username string `json:"username" validate:"required,min=3,max=32"`
	Email    string `json:"email" validate:"required,email"`
	Mobile   string `json:"mobile,omitempty" validate:"omitempty,e164"`
	Age      int    `json:"age" validate:"gte=0"`
	Device   struct {
		Name string `json:"name" validate:"max=8"`
	} `json:"device"`
}

var errDatabaseDown = errors.New("database down")

// newServer is a Router with a route that decodes a body, one that fails internally, one
// whose error a classifier knows, and one that panics.
func newServer(t *testing.T, logs *bytes.Buffer, reg prometheus.Registerer) *httptest.Server {
	t.Helper()
	var metrics *httpapi.Metrics
	if reg != nil {
		var err error
		if metrics, err = httpapi.NewMetrics(reg); err != nil {
			t.Fatal(err)
		}
	}
	logger := slog.New(slog.DiscardHandler)
	if logs != nil {
		logger = slog.New(slog.NewJSONHandler(logs, nil))
	}
	dec := httpapi.NewDecoder()
	rt := httpapi.NewRouter(httpapi.RouterOptions{
		Name:    "public",
		Logger:  logger,
		Metrics: metrics,
		Classifiers: []httpapi.Classifier{func(err error) *httpapi.Error {
			if errors.Is(err, errDatabaseDown) {
				return httpapi.NewError(http.StatusServiceUnavailable, httpapi.CodeTenantConnectionMissing, "Tenant environment is not available.")
			}
			return nil
		}},
	})
	rt.Handle("POST /signup", httpapi.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		var in signupRequest
		if err := dec.Decode(r, &in); err != nil {
			return err
		}
		return httpapi.WriteSuccess(w, r, http.StatusCreated, "SIGNUP_SUCCESS", "User registered successfully.", map[string]string{"username": in.Username})
	}))
	rt.Handle("GET /boom", httpapi.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
		return errors.New("mongodb://admin:hunter2@db: secret internal detail")
	}))
	rt.Handle("GET /down", httpapi.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
		return errDatabaseDown
	}))
	rt.Handle("GET /panic", http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic("kaboom")
	}))
	srv := httptest.NewServer(rt)
	t.Cleanup(srv.Close)
	return srv
}

type envelope struct {
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data"`
	Meta    struct {
		Status  string          `json:"status"`
		Code    string          `json:"code"`
		Details json.RawMessage `json:"details"`
	} `json:"meta"`
	TS string `json:"ts"`
}

func do(t *testing.T, method, url, contentType, body string) (*http.Response, envelope) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		t.Fatalf("%s %s: body %q is not JSON: %v", method, url, raw, err)
	}
	return resp, env
}

var tsRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

func TestEnvelopeAnswers(t *testing.T) {
	srv := newServer(t, nil, nil)
	cases := map[string]struct {
		method, path, contentType, body string
		wantStatus                      int
		wantCode                        string
		wantDetails                     string // JSON, "" for none
	}{
		"success":                  {"POST", "/signup", "application/json", `{"username":"alice","email":"a@example.com","extra":"ignored"}`, 201, "SIGNUP_SUCCESS", ""},
		"json with charset":        {"POST", "/signup", "application/json; charset=utf-8", `{"username":"alice","email":"a@example.com"}`, 201, "SIGNUP_SUCCESS", ""},
		"+json media type":         {"POST", "/signup", "application/merge-patch+json", `{"username":"alice","email":"a@example.com"}`, 201, "SIGNUP_SUCCESS", ""},
		"malformed JSON":           {"POST", "/signup", "application/json", `{"username":`, 400, "INVALID_JSON", ""},
		"empty body":               {"POST", "/signup", "application/json", ``, 400, "INVALID_JSON", ""},
		"array body":               {"POST", "/signup", "application/json", `[{"username":"alice"}]`, 400, "INVALID_JSON", ""},
		"null body":                {"POST", "/signup", "application/json", `null`, 400, "INVALID_JSON", ""},
		"trailing data":            {"POST", "/signup", "application/json", `{"username":"alice","email":"a@example.com"} {}`, 400, "INVALID_JSON", ""},
		"form content type":        {"POST", "/signup", "application/x-www-form-urlencoded", `username=alice`, 415, "UNSUPPORTED_MEDIA_TYPE", ""},
		"no content type":          {"POST", "/signup", "", `{}`, 415, "UNSUPPORTED_MEDIA_TYPE", ""},
		"missing fields":           {"POST", "/signup", "application/json", `{}`, 400, "VALIDATION_FAILED", `[{"field":"username","rule":"required","message":"username is a required field"},{"field":"email","rule":"required","message":"email is a required field"}]`},
		"wrong type":               {"POST", "/signup", "application/json", `{"username":42,"email":"a@example.com"}`, 400, "VALIDATION_FAILED", `[{"field":"username","rule":"type","message":"username must be a string"}]`},
		"wrong nested type":        {"POST", "/signup", "application/json", `{"username":"alice","email":"a@example.com","device":{"name":true}}`, 400, "VALIDATION_FAILED", `[{"field":"device.name","rule":"type","message":"device.name must be a string"}]`},
		"broken rules":             {"POST", "/signup", "application/json", `{"username":"al","email":"nope","mobile":"123","age":-1,"device":{"name":"far too long"}}`, 400, "VALIDATION_FAILED", `[{"field":"username","rule":"min","message":"username must be at least 3 characters in length"},{"field":"email","rule":"email","message":"email must be a valid email address"},{"field":"mobile","rule":"e164","message":"mobile must be a valid E.164 formatted phone number"},{"field":"age","rule":"gte","message":"age must be 0 or greater"},{"field":"device.name","rule":"max","message":"device.name must be a maximum of 8 characters in length"}]`},
		"oversized body":           {"POST", "/signup", "application/json", `{"username":"` + strings.Repeat("a", httpapi.MaxBodyBytes) + `"}`, 413, "PAYLOAD_TOO_LARGE", ""},
		"unknown route":            {"GET", "/nope", "", "", 404, "NOT_FOUND", ""},
		"wrong method":             {"GET", "/signup", "", "", 405, "METHOD_NOT_ALLOWED", ""},
		"internal error":           {"GET", "/boom", "", "", 500, "INTERNAL_ERROR", ""},
		"classified error":         {"GET", "/down", "", "", 503, "TENANT_CONNECTION_MISSING", ""},
		"panic":                    {"GET", "/panic", "", "", 500, "INTERNAL_ERROR", ""},
		"chunked oversized body":   {"POST", "/signup", "application/json", "", 413, "PAYLOAD_TOO_LARGE", ""}, // body set below
		"bad UTF-8 is still valid": {"POST", "/signup", "application/json", "{\"username\":\"al\xffce\",\"email\":\"a@example.com\"}", 201, "SIGNUP_SUCCESS", ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var resp *http.Response
			var env envelope
			if name == "chunked oversized body" {
				// No Content-Length: the limit must hold while reading.
				req, _ := http.NewRequest("POST", srv.URL+"/signup", io.MultiReader(strings.NewReader(`{"username":"`), strings.NewReader(strings.Repeat("a", 2<<20)), strings.NewReader(`"}`)))
				req.Header.Set("Content-Type", "application/json")
				var err error
				if resp, err = http.DefaultClient.Do(req); err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
					t.Fatal(err)
				}
			} else {
				resp, env = do(t, tc.method, srv.URL+tc.path, tc.contentType, tc.body)
			}
			if resp.StatusCode != tc.wantStatus || env.Meta.Code != tc.wantCode {
				t.Fatalf("got %d %s (%q), want %d %s", resp.StatusCode, env.Meta.Code, env.Message, tc.wantStatus, tc.wantCode)
			}
			wantStatus := "error"
			if tc.wantStatus < 400 {
				wantStatus = "success"
			}
			if env.Meta.Status != wantStatus {
				t.Errorf("meta.status = %q, want %q", env.Meta.Status, wantStatus)
			}
			if !tsRE.MatchString(env.TS) {
				t.Errorf("ts = %q, want an RFC 3339 UTC time with milliseconds", env.TS)
			}
			if env.Message == "" {
				t.Error("message is empty")
			}
			if got := resp.Header.Get("Content-Type"); got != "application/json; charset=utf-8" {
				t.Errorf("Content-Type = %q", got)
			}
			if resp.Header.Get("X-Request-Id") == "" {
				t.Error("no X-Request-Id")
			}
			if tc.wantDetails != "" {
				if diff := cmp.Diff(compact(t, tc.wantDetails), compact(t, string(env.Meta.Details))); diff != "" {
					t.Errorf("meta.details (-want +got):\n%s", diff)
				}
			}
			if tc.wantStatus == 405 && resp.Header.Get("Allow") == "" {
				t.Error("405 without Allow")
			}
			if tc.wantStatus >= 500 && strings.Contains(env.Message+string(env.Meta.Details), "hunter2") {
				t.Errorf("internal detail leaked: %+v", env)
			}
		})
	}
}

func compact(t *testing.T, s string) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(s)); err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return b.String()
}

func TestAccessLogCarriesOutcomeNotSecrets(t *testing.T) {
	var logs bytes.Buffer
	srv := newServer(t, &logs, nil)
	req, _ := http.NewRequest("GET", srv.URL+"/boom?token=sekrit-query-token", nil)
	req.Header.Set("Authorization", "Bearer sekrit-bearer-token")
	req.Header.Set("X-Request-Id", "req-123")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Request-Id"); got != "req-123" {
		t.Errorf("X-Request-Id = %q, want the client's req-123", got)
	}
	var line map[string]any
	if err := json.Unmarshal(logs.Bytes(), &line); err != nil {
		t.Fatalf("log %q: %v", logs.String(), err)
	}
	want := map[string]any{"request_id": "req-123", "route": "GET /boom", "status": float64(500), "code": "INTERNAL_ERROR", "level": "ERROR", "path": "/boom"}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("log %s = %v, want %v", k, line[k], v)
		}
	}
	if !strings.Contains(line["error"].(string), "secret internal detail") {
		t.Errorf("log error = %v, want the internal cause", line["error"])
	}
	for _, secret := range []string{"sekrit-query-token", "sekrit-bearer-token"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("log leaks %q: %s", secret, logs.String())
		}
	}
}

func TestRequestIDIsReplacedWhenUnsafe(t *testing.T) {
	srv := newServer(t, nil, nil)
	req, _ := http.NewRequest("GET", srv.URL+"/nope", nil)
	req.Header.Set("X-Request-Id", "bad id\twith spaces")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Request-Id"); got == "" || strings.ContainsAny(got, " \t") {
		t.Fatalf("X-Request-Id = %q, want a fresh safe id", got)
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	srv := newServer(t, nil, reg)
	do(t, "POST", srv.URL+"/signup", "application/json", `{"username":"alice","email":"a@example.com"}`)
	do(t, "POST", srv.URL+"/signup", "application/json", `{`)
	do(t, "GET", srv.URL+"/nope", "", "")
	want := `
# HELP authmesh_authserver_http_requests_total HTTP requests answered, by listener, route pattern, method, status and envelope code.
# TYPE authmesh_authserver_http_requests_total counter
authmesh_authserver_http_requests_total{code="INVALID_JSON",method="POST",route="POST /signup",server="public",status="400"} 1
authmesh_authserver_http_requests_total{code="NOT_FOUND",method="GET",route="unmatched",server="public",status="404"} 1
authmesh_authserver_http_requests_total{code="SIGNUP_SUCCESS",method="POST",route="POST /signup",server="public",status="201"} 1
# HELP authmesh_authserver_http_requests_in_flight Requests being served, by listener.
# TYPE authmesh_authserver_http_requests_in_flight gauge
authmesh_authserver_http_requests_in_flight{server="public"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"authmesh_authserver_http_requests_total", "authmesh_authserver_http_requests_in_flight"); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(reg, "authmesh_authserver_http_request_duration_seconds"); n != 2 {
		t.Fatalf("duration histogram has %d series, want 2 (POST /signup, unmatched)", n)
	}
}

// FuzzDecode feeds arbitrary bodies to the decoder: it never panics, its only failures are
// the pinned 400/413 answers, and whatever it accepts satisfies the validation rules.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		`{"username":"alice","email":"a@example.com"}`,
		`{"username":"alice","email":"a@example.com","mobile":"+4915112345678","age":3,"device":{"name":"phone"}}`,
		`{"username":42}`,
		`{"device":[]}`,
		`{`,
		`[]`,
		`null`,
		``,
		`{"username":"alice","email":"a@example.com"} trailing`,
		"{\"username\":\"\xff\xfe\",\"email\":\"a@example.com\"}",
		`{"username":"a\u0000b","email":"a@example.com","age":1e400}`,
	} {
		f.Add([]byte(seed))
	}
	dec := httpapi.NewDecoder()
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest("POST", "/signup", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		var in signupRequest
		err := dec.Decode(req, &in)
		if err == nil {
			if verr := dec.Validate(&in); verr != nil {
				t.Fatalf("Decode accepted %q but the value fails validation: %v", body, verr)
			}
			return
		}
		var e *httpapi.Error
		if !errors.As(err, &e) {
			t.Fatalf("Decode(%q) = %v, want an *httpapi.Error", body, err)
		}
		switch e.Code {
		case httpapi.CodeInvalidJSON, httpapi.CodeValidationFailed:
			if e.Status != http.StatusBadRequest {
				t.Fatalf("%s with status %d", e.Code, e.Status)
			}
		case httpapi.CodePayloadTooLarge:
			if len(body) <= httpapi.MaxBodyBytes {
				t.Fatalf("PAYLOAD_TOO_LARGE for %d bytes", len(body))
			}
		default:
			t.Fatalf("Decode(%q) = %v, an unexpected code", body, e)
		}
	})
}
