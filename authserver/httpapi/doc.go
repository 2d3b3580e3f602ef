// Package httpapi owns the auth server's HTTP contract: the one place that writes the JSON
// envelope {"message","data","meta":{"status","code","details"?},"ts"}, the error type that
// carries a code and an HTTP status, request decoding and validation (1 MiB body limit,
// INVALID_JSON, VALIDATION_FAILED with per-field details), and the Router every listener uses:
// Go 1.22 ServeMux patterns, enveloped 404/405 answers, request ids, panic recovery, structured
// access logs (log/slog) and Prometheus metrics.
//
// A handler is a HandlerFunc that writes its success with WriteSuccess (or a standard's own
// shape with WriteRaw) and returns an error for everything else:
//
//	rt.Handle("POST /auth/signup", httpapi.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
//		var in signupRequest
//		if err := dec.Decode(r, &in); err != nil {
//			return err // INVALID_JSON, VALIDATION_FAILED, PAYLOAD_TOO_LARGE, ...
//		}
//		...
//		if exists {
//			return httpapi.NewError(http.StatusConflict, "USER_EXISTS", "A user with this username or email already exists.")
//		}
//		return httpapi.WriteSuccess(w, r, http.StatusCreated, "SIGNUP_SUCCESS", "User registered successfully.", out)
//	}), tenantMiddleware)
//
// An error that is not an *Error becomes 500 INTERNAL_ERROR: its text is logged with the
// request id, never sent. A Router may be given classifiers that turn known errors of other
// packages (for example a MongoDB network error) into an *Error.
//
// Logs never carry bodies, query strings, headers or tokens: only method, route pattern, path,
// status, code, duration, request id and the attributes handlers add with LogAttrs (the tenant
// middleware adds the tenant id).
//
// Metrics (all labelled with server = the Router's name):
//
//	authmesh_authserver_http_requests_total{server,route,method,status,code}   counter
//	authmesh_authserver_http_request_duration_seconds{server,route,method}     histogram
//	authmesh_authserver_http_requests_in_flight{server}                         gauge
//
// route is the matched ServeMux pattern, or "unmatched"; code is the envelope code, or "" for
// answers whose shape a standard fixes.
//
// This package links neither MongoDB nor Kubernetes, so a part that must stay free of them
// (the sidecar) may reuse it.
package httpapi
