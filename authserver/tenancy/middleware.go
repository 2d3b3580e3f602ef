package tenancy

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/topology"

	"github.com/authmesh/authmesh/authserver/httpapi"
)

// HeaderTenantID is the request header that names the tenant.
const HeaderTenantID = "x-tenant-id"

type tenantKey struct{}

// WithTenant returns ctx carrying t.
func WithTenant(ctx context.Context, t *Tenant) context.Context {
	return context.WithValue(ctx, tenantKey{}, t)
}

// FromContext returns the request's tenant, or nil on a route without the tenant middleware.
func FromContext(ctx context.Context) *Tenant {
	t, _ := ctx.Value(tenantKey{}).(*Tenant)
	return t
}

// RouteOptions says how a route finds its tenant. The zero value is the common case: the
// x-tenant-id header, with the tenant's database leased for the request.
type RouteOptions struct {
	// PathValue names the pattern wildcard holding the tenant id ("tenant" for
	// "/t/{tenant}/..."); empty means the x-tenant-id header.
	PathValue string
	// NoDatabase skips the database, for routes that need only the tenant's spec and keys
	// (JWKS, discovery): they keep answering while the database is down.
	NoDatabase bool
}

// Middleware resolves the request's tenant (see RouteOptions), applies its CORS policy, and
// puts the *Tenant in the request context; it answers TENANT_ID_MISSING, TENANT_NOT_FOUND,
// TENANT_SUSPENDED or TENANT_CONNECTION_MISSING itself. The database lease, if any, is
// released when the handler returns.
func (r *Registry) Middleware(o RouteOptions) httpapi.Middleware {
	return func(next http.Handler) http.Handler {
		return httpapi.HandlerFunc(func(w http.ResponseWriter, req *http.Request) error {
			var id string
			if o.PathValue != "" {
				id = req.PathValue(o.PathValue)
			} else {
				id = strings.TrimSpace(req.Header.Get(HeaderTenantID))
			}
			if id == "" {
				return httpapi.ErrTenantIDMissing()
			}
			ctx := req.Context()
			if ValidTenantID(id) {
				httpapi.LogAttrs(ctx, slog.String("tenant", id))
			}
			st := r.lookup(id)
			if st != nil {
				setCORS(w, req, st.cfg.Spec.CORS.AllowedOrigins)
			}
			t, release, err := r.acquire(ctx, st, id, !o.NoDatabase)
			if err != nil {
				return err
			}
			defer release()
			next.ServeHTTP(w, req.WithContext(WithTenant(ctx, t)))
			return nil
		})
	}
}

// exposedHeaders are the response headers a browser script may read.
const exposedHeaders = "X-Request-Id, Retry-After, WWW-Authenticate"

// allowedRequestHeaders are the request headers a cross-origin script may send.
var allowedRequestHeaders = []string{"authorization", "content-type", "x-request-id", HeaderTenantID}

func setCORS(w http.ResponseWriter, req *http.Request, allowed []string) {
	origin := req.Header.Get("Origin")
	if origin == "" {
		return
	}
	h := w.Header()
	h.Add("Vary", "Origin")
	if slices.Contains(allowed, origin) {
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Expose-Headers", exposedHeaders)
	}
}

// Preflight answers CORS preflight requests (give it to httpapi.RouterOptions.Preflight). A
// preflight carries no x-tenant-id, so an origin passes when any serving tenant allows it; the
// real request is then held to its own tenant's list.
func (r *Registry) Preflight() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		h := w.Header()
		h.Add("Vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers")
		origin := req.Header.Get("Origin")
		r.mu.RLock()
		ok := r.origins[origin] > 0
		r.mu.RUnlock()
		if ok {
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Methods", req.Header.Get("Access-Control-Request-Method"))
			var allow []string
			for _, v := range req.Header.Values("Access-Control-Request-Headers") {
				for name := range strings.SplitSeq(v, ",") {
					name = strings.ToLower(strings.TrimSpace(name))
					if slices.Contains(allowedRequestHeaders, name) && !slices.Contains(allow, name) {
						allow = append(allow, name)
					}
				}
			}
			if len(allow) > 0 {
				h.Set("Access-Control-Allow-Headers", strings.Join(allow, ", "))
			}
			h.Set("Access-Control-Max-Age", "600")
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

// Classify is an httpapi.Classifier for database errors: a database that cannot be reached
// (network errors, timeouts, no server to select, a closed client) answers 503
// TENANT_CONNECTION_MISSING rather than 500.
func Classify(err error) *httpapi.Error {
	var sse topology.ServerSelectionError
	if errors.Is(err, ErrUnreachable) || errors.Is(err, mongo.ErrClientDisconnected) ||
		mongo.IsNetworkError(err) || mongo.IsTimeout(err) || errors.As(err, &sse) {
		return httpapi.NewError(http.StatusServiceUnavailable, httpapi.CodeTenantConnectionMissing,
			"Tenant environment is not available.")
	}
	return nil
}
