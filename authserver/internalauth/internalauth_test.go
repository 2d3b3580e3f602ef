package internalauth_test

import (
	"context"
	"errors"
	"fmt"
	clocktesting "k8s.io/utils/clock/testing"
	"net/http"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	authenticationv1client "k8s.io/client-go/kubernetes/typed/authentication/v1"

	"github.com/authmesh/authmesh/authserver/httpapi"
	"github.com/authmesh/authmesh/authserver/internalauth"
	"github.com/authmesh/authmesh/internal/testenv"
)

var clientset *kubernetes.Clientset

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	api, err := testenv.StartAPIServer(testenv.APIServerOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = api.Stop() }()
	if clientset, err = kubernetes.NewForConfig(api.Config); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// countingReviews counts the TokenReviews made.
type countingReviews struct {
	authenticationv1client.TokenReviewInterface
	n atomic.Int64
}

func (c *countingReviews) Create(ctx context.Context, tr *authenticationv1.TokenReview, opts metav1.CreateOptions) (*authenticationv1.TokenReview, error) {
	c.n.Add(1)
	return c.TokenReviewInterface.Create(ctx, tr, opts)
}

// serviceAccountToken creates a ServiceAccount (once) and a projected-style token of it.
func serviceAccountToken(t *testing.T, namespace, name, audience string) string {
	t.Helper()
	ctx := context.Background()
	_, err := clientset.CoreV1().ServiceAccounts(namespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !isAlreadyExists(err) {
		t.Fatal(err)
	}
	expiry := int64(600)
	tr, err := clientset.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: []string{audience}, ExpirationSeconds: &expiry},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}

func isAlreadyExists(err error) bool {
	var status interface{ Status() metav1.Status }
	return errors.As(err, &status) && status.Status().Reason == metav1.StatusReasonAlreadyExists
}

func request(token string) *http.Request {
	r := httptest.NewRequest("GET", "/internal/v1/tenants/alpha/revocations", nil)
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	return r
}

// TestTokenReview checks callers against a real API server: the right ServiceAccount with a
// token for the audience gets in; a token for another audience, another ServiceAccount,
// garbage and no token do not; answers are cached.
func TestTokenReview(t *testing.T) {
	good := serviceAccountToken(t, "default", "sidecar", internalauth.DefaultAudience)
	wrongAudience := serviceAccountToken(t, "default", "sidecar", "https://kubernetes.default.svc")
	stranger := serviceAccountToken(t, "default", "stranger", internalauth.DefaultAudience)

	reviews := &countingReviews{TokenReviewInterface: clientset.AuthenticationV1().TokenReviews()}
	clk := clocktesting.NewFakeClock(time.Now())
	a, err := internalauth.NewTokenReview(internalauth.TokenReviewOptions{
		Reviews: reviews, Allowed: []string{"default/sidecar", "shop/*"}, Now: clk.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cases := map[string]struct {
		token   string
		want    error
		wantWho string
	}{
		"allowed service account":    {good, nil, "system:serviceaccount:default:sidecar"},
		"token for another audience": {wrongAudience, internalauth.ErrUnauthenticated, ""},
		"service account not listed": {stranger, internalauth.ErrForbidden, ""},
		"garbage":                    {"not-a-token", internalauth.ErrUnauthenticated, ""},
		"no token":                   {"", internalauth.ErrUnauthenticated, ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c, err := a.Authenticate(ctx, request(tc.token))
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if tc.wantWho != "" && c.Username != tc.wantWho {
				t.Fatalf("caller %q, want %q", c.Username, tc.wantWho)
			}
		})
	}

	before := reviews.n.Load()
	for range 5 {
		if _, err := a.Authenticate(ctx, request(good)); err != nil {
			t.Fatal(err)
		}
	}
	if n := reviews.n.Load() - before; n != 0 {
		t.Fatalf("%d reviews for a cached token, want 0", n)
	}
	clk.Step(61 * time.Second)
	if _, err := a.Authenticate(ctx, request(good)); err != nil {
		t.Fatal(err)
	}
	if n := reviews.n.Load() - before; n != 1 {
		t.Fatalf("%d reviews after the cache expired, want 1", n)
	}
}

// TestMiddlewareAnswers checks the statuses the middleware answers with.
func TestMiddlewareAnswers(t *testing.T) {
	good := serviceAccountToken(t, "default", "sidecar", internalauth.DefaultAudience)
	stranger := serviceAccountToken(t, "default", "stranger", internalauth.DefaultAudience)
	a, err := internalauth.NewTokenReview(internalauth.TokenReviewOptions{
		Reviews: clientset.AuthenticationV1().TokenReviews(), Allowed: []string{"default/sidecar"},
	})
	if err != nil {
		t.Fatal(err)
	}
	rt := httpapi.NewRouter(httpapi.RouterOptions{Name: "internal"})
	rt.Handle("GET /internal/v1/tenants/{tenant}/revocations", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
	}), internalauth.Middleware(a))
	for name, tc := range map[string]struct {
		token string
		want  int
	}{
		"allowed":  {good, 200},
		"stranger": {stranger, 403},
		"none":     {"", 401},
	} {
		w := httptest.NewRecorder()
		rt.ServeHTTP(w, request(tc.token))
		if w.Code != tc.want {
			t.Errorf("%s: status %d, want %d", name, w.Code, tc.want)
		}
	}
	w := httptest.NewRecorder()
	internalauth.Middleware(internalauth.None{})(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {})).ServeHTTP(w, request(""))
	if w.Code != 200 {
		t.Errorf("None: status %d, want 200", w.Code)
	}
}

func TestParseAllowed(t *testing.T) {
	if err := internalauth.ParseAllowed([]string{"a/b", "c/*"}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"a", "/b", "a/", "a/b/c"} {
		if err := internalauth.ParseAllowed([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestMadeUpTokensCostLittle: anyone who can reach the internal API can send tokens. Tokens
// that are not shaped like a ServiceAccount token are refused without a TokenReview; JWT-shaped
// made-up tokens are reviewed at most ReviewsPerSecond a second (then 503), and however many
// there are, they do not push a caller that passed out of the cache.
func TestMadeUpTokensCostLittle(t *testing.T) {
	good := serviceAccountToken(t, "default", "sidecar", internalauth.DefaultAudience)
	reviews := &countingReviews{TokenReviewInterface: clientset.AuthenticationV1().TokenReviews()}
	a, err := internalauth.NewTokenReview(internalauth.TokenReviewOptions{
		Reviews: reviews, Allowed: []string{"default/sidecar"}, MaxCacheEntries: 50, ReviewsPerSecond: 20,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := a.Authenticate(ctx, request(good)); err != nil {
		t.Fatal(err)
	}

	before := reviews.n.Load()
	for i := range 500 {
		if _, err := a.Authenticate(ctx, request(fmt.Sprintf("garbage-%d", i))); !errors.Is(err, internalauth.ErrUnauthenticated) {
			t.Fatalf("made-up token %d: %v, want ErrUnauthenticated", i, err)
		}
	}
	if n := reviews.n.Load() - before; n != 0 {
		t.Fatalf("500 tokens not shaped like a JWT caused %d TokenReviews, want 0", n)
	}

	start := time.Now()
	throttled := 0
	for i := range 300 {
		_, err := a.Authenticate(ctx, request(fmt.Sprintf("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.sig%d", i)))
		switch {
		case errors.Is(err, internalauth.ErrUnauthenticated):
		case err != nil && !errors.Is(err, internalauth.ErrForbidden):
			throttled++
		default:
			t.Fatalf("made-up JWT %d: %v", i, err)
		}
	}
	reviewed := reviews.n.Load() - before
	if limit := int64(41 + time.Since(start).Seconds()*20); reviewed > limit || throttled == 0 {
		t.Fatalf("300 made-up JWTs caused %d TokenReviews (%d throttled); want at most %d", reviewed, throttled, limit)
	}
	before = reviews.n.Load()
	if _, err := a.Authenticate(ctx, request(good)); err != nil {
		t.Fatal(err)
	}
	if n := reviews.n.Load() - before; n != 0 {
		t.Fatalf("the flood pushed the good caller out of the cache (%d new reviews)", n)
	}
	t.Logf("300 made-up JWTs: %d reviewed, %d throttled", reviewed, throttled)
}
