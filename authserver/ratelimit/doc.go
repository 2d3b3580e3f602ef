// Package ratelimit owns the auth server's request rate limits: token buckets
// (golang.org/x/time/rate) keyed by a string such as a client IP or a tenant's account, kept in
// memory with a bounded number of keys (least recently used keys are forgotten first).
//
// The buckets are per replica: N replicas behind a load balancer allow up to N times a limit
// to a client whose requests are spread over all of them. That is acceptable for slowing down
// guessing and mail flooding; the hard limits on guessing (account lockout, one-time-code
// attempts) are counted in the database and hold across replicas.
//
// A Limit is written "<events>/<period>" with an optional ",burst=<n>" ("10/1m",
// "100/1h,burst=20"); "off" disables a limit. The burst defaults to the events.
//
// In handlers: Limiter.PerClientIP is route middleware; Take charges a key and returns the
// 429 RATE_LIMITED error (with Retry-After) when its bucket is empty; Check does the same
// without charging, for limits charged only once an attempt turned out to count.
package ratelimit
