package httpapi

import (
	"context"
	"log/slog"
)

// exchange is what the Router learns about one request while it is served: the route it
// matched, the outcome handlers wrote, and log attributes added on the way. One goroutine
// (the handler's) touches it at a time.
type exchange struct {
	requestID string
	route     string
	code      string
	cause     error
	attrs     []slog.Attr
	classify  []Classifier
}

type exchangeKey struct{}

func withExchange(ctx context.Context, x *exchange) context.Context {
	return context.WithValue(ctx, exchangeKey{}, x)
}

func exchangeFrom(ctx context.Context) *exchange {
	x, _ := ctx.Value(exchangeKey{}).(*exchange)
	return x
}

// RequestID returns the request's id (the X-Request-Id the client sent when it was well
// formed, else one the Router made up), or "" outside a Router.
func RequestID(ctx context.Context) string {
	if x := exchangeFrom(ctx); x != nil {
		return x.requestID
	}
	return ""
}

// Code returns the envelope code written for the request so far ("" before the answer, or
// outside a Router): for middleware that counts outcomes after the handler ran.
func Code(ctx context.Context) string {
	if x := exchangeFrom(ctx); x != nil {
		return x.code
	}
	return ""
}

// LogAttrs adds attributes to the request's access log line (e.g. the tenant, a user id).
// Never add secrets or tokens.
func LogAttrs(ctx context.Context, attrs ...slog.Attr) {
	if x := exchangeFrom(ctx); x != nil {
		x.attrs = append(x.attrs, attrs...)
	}
}
