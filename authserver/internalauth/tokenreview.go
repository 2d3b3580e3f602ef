package internalauth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	authenticationv1client "k8s.io/client-go/kubernetes/typed/authentication/v1"

	"github.com/authmesh/authmesh/guard"
)

// DefaultAudience is the audience internal callers' projected tokens are minted for.
const DefaultAudience = "authmesh-internal"

// serviceAccountPrefix starts the user name of every ServiceAccount.
const serviceAccountPrefix = "system:serviceaccount:"

// TokenReviewOptions configures a TokenReview authenticator.
type TokenReviewOptions struct {
	// Reviews creates TokenReviews (clientset.AuthenticationV1().TokenReviews()).
	Reviews authenticationv1client.TokenReviewInterface
	// Audiences the token must be valid for (default DefaultAudience).
	Audiences []string
	// Allowed lists the ServiceAccounts let in, as "namespace/name" or "namespace/*"; empty
	// lets in every ServiceAccount whose token has the audience.
	Allowed []string
	// CacheTTL is how long a valid token's review is reused (default 1m); NegativeTTL a
	// refusal's (default 10s). MaxCacheEntries bounds the cache (default 10,000).
	CacheTTL        time.Duration
	NegativeTTL     time.Duration
	MaxCacheEntries int
	// ReviewsPerSecond bounds the TokenReviews sent for tokens not in the cache (default 200 a
	// second, twice that at once): anyone who can reach the internal API can send tokens, and
	// each uncached one costs a call to the Kubernetes API server. Past it, callers get 503
	// AUTHENTICATION_UNAVAILABLE; cached callers are not affected.
	ReviewsPerSecond float64
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// TokenReview authenticates internal callers by their ServiceAccount token.
type TokenReview struct {
	opts    TokenReviewOptions
	allowed []allowRule
	flight  singleflight.Group
	reviews *rate.Limiter

	mu    sync.Mutex
	cache map[string]reviewResult
}

type allowRule struct{ namespace, name string } // name "*" for any

type reviewResult struct {
	username      string // "" when refused
	authenticated bool
	until         time.Time
}

// ParseAllowed checks a list of "namespace/name" or "namespace/*" entries.
func ParseAllowed(list []string) error {
	_, err := parseAllowed(list)
	return err
}

func parseAllowed(list []string) ([]allowRule, error) {
	var rules []allowRule
	var errs []error
	for _, e := range list {
		ns, name, ok := strings.Cut(strings.TrimSpace(e), "/")
		if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
			errs = append(errs, fmt.Errorf("%q is not namespace/name or namespace/*", e))
			continue
		}
		rules = append(rules, allowRule{ns, name})
	}
	return rules, errors.Join(errs...)
}

// NewTokenReview returns a TokenReview authenticator.
func NewTokenReview(opts TokenReviewOptions) (*TokenReview, error) {
	if opts.Reviews == nil {
		return nil, errors.New("internalauth: TokenReview needs a TokenReview client")
	}
	rules, err := parseAllowed(opts.Allowed)
	if err != nil {
		return nil, fmt.Errorf("internalauth: allowed service accounts: %w", err)
	}
	if len(opts.Audiences) == 0 {
		opts.Audiences = []string{DefaultAudience}
	}
	if opts.CacheTTL <= 0 {
		opts.CacheTTL = time.Minute
	}
	if opts.NegativeTTL <= 0 {
		opts.NegativeTTL = 10 * time.Second
	}
	if opts.MaxCacheEntries <= 0 {
		opts.MaxCacheEntries = 10_000
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ReviewsPerSecond <= 0 {
		opts.ReviewsPerSecond = 200
	}
	limiter := rate.NewLimiter(rate.Limit(opts.ReviewsPerSecond), int(2*opts.ReviewsPerSecond)+1)
	return &TokenReview{opts: opts, allowed: rules, reviews: limiter, cache: map[string]reviewResult{}}, nil
}

// Authenticate implements Authenticator.
func (a *TokenReview) Authenticate(ctx context.Context, r *http.Request) (Caller, error) {
	token := guard.BearerToken(r)
	if !jwtShaped(token) { // refused without a call to the API server
		return Caller{}, ErrUnauthenticated
	}
	res, err := a.review(ctx, token)
	if err != nil {
		return Caller{}, err
	}
	if !res.authenticated {
		return Caller{}, ErrUnauthenticated
	}
	if !a.allows(res.username) {
		return Caller{Username: res.username}, fmt.Errorf("%w: %s", ErrForbidden, res.username)
	}
	return Caller{Username: res.username}, nil
}

// allows applies the Allowed list to a user name.
func (a *TokenReview) allows(username string) bool {
	if len(a.allowed) == 0 {
		return true
	}
	rest, ok := strings.CutPrefix(username, serviceAccountPrefix)
	if !ok {
		return false
	}
	ns, name, ok := strings.Cut(rest, ":")
	if !ok {
		return false
	}
	return slices.ContainsFunc(a.allowed, func(r allowRule) bool {
		return r.namespace == ns && (r.name == "*" || r.name == name)
	})
}

// review returns the cached or a fresh review of token.
func (a *TokenReview) review(ctx context.Context, token string) (reviewResult, error) {
	sum := sha256.Sum256([]byte(token))
	key := hex.EncodeToString(sum[:])
	now := a.opts.Now()
	a.mu.Lock()
	res, ok := a.cache[key]
	a.mu.Unlock()
	if ok && now.Before(res.until) {
		return res, nil
	}
	v, err, _ := a.flight.Do(key, func() (any, error) {
		if !a.reviews.Allow() {
			return reviewResult{}, errTooManyReviews
		}
		// Shared by concurrent callers, so not bound to the first one's request.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		tr, err := a.opts.Reviews.Create(rctx, &authenticationv1.TokenReview{
			Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: a.opts.Audiences},
		}, metav1.CreateOptions{})
		if err != nil {
			return reviewResult{}, fmt.Errorf("internalauth: TokenReview: %w", err)
		}
		res := reviewResult{until: a.opts.Now().Add(a.opts.NegativeTTL)}
		// A client that asks for audiences must check the answer names one of them.
		if tr.Status.Authenticated && tr.Status.Error == "" && intersects(tr.Status.Audiences, a.opts.Audiences) {
			res = reviewResult{username: tr.Status.User.Username, authenticated: true, until: a.opts.Now().Add(a.opts.CacheTTL)}
		}
		a.remember(key, res)
		return res, nil
	})
	if err != nil {
		return reviewResult{}, err
	}
	return v.(reviewResult), nil
}

var errTooManyReviews = errors.New("internalauth: too many TokenReviews at once")

// maxServiceAccountToken bounds the tokens sent for review; Kubernetes' are a few KiB.
const maxServiceAccountToken = 16 << 10

// jwtShaped reports whether token could be a ServiceAccount token: three non-empty
// base64url segments, of a bounded length. Anything else cannot pass a TokenReview.
func jwtShaped(token string) bool {
	if token == "" || len(token) > maxServiceAccountToken || strings.Count(token, ".") != 2 {
		return false
	}
	for part := range strings.SplitSeq(token, ".") {
		if part == "" || strings.ContainsFunc(part, func(c rune) bool {
			return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_')
		}) {
			return false
		}
	}
	return true
}

// remember caches a review. When the cache is full it drops what expired, then refusals
// (a flood of made-up tokens must not push out the callers that passed), and only then,
// for a caller that passed, everything.
func (a *TokenReview) remember(key string, res reviewResult) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.cache) >= a.opts.MaxCacheEntries {
		now := a.opts.Now()
		for k, v := range a.cache {
			if !now.Before(v.until) || !v.authenticated {
				delete(a.cache, k)
			}
		}
		if len(a.cache) >= a.opts.MaxCacheEntries {
			if !res.authenticated {
				return
			}
			clear(a.cache)
		}
	}
	a.cache[key] = res
}

func intersects(a, b []string) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}
