package tenancy

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// ErrUnreachable is wrapped by the errors of Pool.Acquire when the database does not answer.
var ErrUnreachable = errors.New("tenancy: database unreachable")

// ErrPoolClosed is returned by Pool.Acquire after Close.
var ErrPoolClosed = errors.New("tenancy: pool closed")

// PoolOptions bounds a Pool. Zero fields take the defaults shown.
type PoolOptions struct {
	// MaxClients is how many MongoDB clients (distinct URIs) may be open at once (32). Clients
	// in use by a request are never closed, so the bound can be passed briefly.
	MaxClients int
	// IdleTimeout closes a client no request has used this long (10m).
	IdleTimeout time.Duration
	// MaxConnsPerClient is each client's connection pool size (20), unless the URI sets
	// maxPoolSize.
	MaxConnsPerClient uint64
	// ServerSelectionTimeout is how long an operation waits for a usable server (5s), unless
	// the URI sets serverSelectionTimeoutMS.
	ServerSelectionTimeout time.Duration
	// HealthInterval is how often each client is pinged (10s).
	HealthInterval time.Duration
	// PingTimeout bounds one ping (2s).
	PingTimeout time.Duration
	// Logger receives client lifecycle and health changes; nil discards them.
	Logger *slog.Logger
	// Registerer receives the pool's metrics; nil registers none.
	Registerer prometheus.Registerer
}

func (o *PoolOptions) setDefaults() {
	if o.MaxClients <= 0 {
		o.MaxClients = 32
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 10 * time.Minute
	}
	if o.MaxConnsPerClient == 0 {
		o.MaxConnsPerClient = 20
	}
	if o.ServerSelectionTimeout <= 0 {
		o.ServerSelectionTimeout = 5 * time.Second
	}
	if o.HealthInterval <= 0 {
		o.HealthInterval = 10 * time.Second
	}
	if o.PingTimeout <= 0 {
		o.PingTimeout = 2 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Pool shares MongoDB clients between tenants by connection URI; see the package doc.
type Pool struct {
	opts PoolOptions

	mu      sync.Mutex
	clients map[string]*pooledClient
	lru     list.List // of *pooledClient, most recently used first
	closed  bool
	wg      sync.WaitGroup

	open   prometheus.Gauge
	closes *prometheus.CounterVec
}

// Close reasons, the label values of authmesh_authserver_mongo_client_closes_total.
const (
	closeIdle     = "idle"
	closeEvicted  = "evicted"
	closeUnused   = "unused"
	closeShutdown = "shutdown"
)

type pooledClient struct {
	uri    string
	id     string // a short hash of the URI, for logs: the URI itself may hold a password
	client *mongo.Client
	elem   *list.Element

	// guarded by Pool.mu
	inUse    int
	lastUsed time.Time
	retired  bool // no tenant uses this URI any more
	closed   bool

	ctx     context.Context // cancelled when the client is closed
	cancel  context.CancelFunc
	checked chan struct{} // closed after the first ping
	recheck chan struct{}
	health  atomic.Pointer[health]
}

type health struct {
	err error
	at  time.Time
}

// NewPool returns an empty Pool. Call Run to close idle clients, and Close at the end.
func NewPool(opts PoolOptions) (*Pool, error) {
	opts.setDefaults()
	p := &Pool{
		opts:    opts,
		clients: map[string]*pooledClient{},
		open: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "authmesh_authserver_mongo_clients",
			Help: "MongoDB clients open, one per distinct tenant connection URI.",
		}),
		closes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "authmesh_authserver_mongo_client_closes_total",
			Help: "MongoDB clients closed, by reason: idle, evicted (least recently used, over MaxClients), unused (no tenant uses the URI), shutdown.",
		}, []string{"reason"}),
	}
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{p.open, p.closes} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return p, nil
}

// Lease is one use of a pooled client; Release it when the request ends.
type Lease struct {
	p    *Pool
	c    *pooledClient
	once sync.Once
}

// Client is the leased MongoDB client.
func (l *Lease) Client() *mongo.Client { return l.c.client }

// Release ends the use. It is safe to call more than once.
func (l *Lease) Release() {
	l.once.Do(func() {
		p := l.p
		p.mu.Lock()
		defer p.mu.Unlock()
		l.c.inUse--
		l.c.lastUsed = time.Now()
		if l.c.retired && l.c.inUse == 0 {
			p.closeLocked(l.c, closeUnused)
		}
	})
}

// Acquire returns a lease on the client for uri, opening it if needed. A new client's first
// ping is awaited; a client whose last ping failed gives an error wrapping ErrUnreachable
// (and is pinged again soon).
func (p *Pool) Acquire(ctx context.Context, uri string) (*Lease, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrPoolClosed
	}
	c := p.clients[uri]
	if c == nil {
		var err error
		if c, err = p.openLocked(uri); err != nil {
			p.mu.Unlock()
			return nil, err
		}
	}
	c.inUse++
	c.lastUsed = time.Now()
	p.lru.MoveToFront(c.elem)
	p.evictLocked()
	p.mu.Unlock()

	lease := &Lease{p: p, c: c}
	select {
	case <-c.checked:
	case <-ctx.Done():
		lease.Release()
		return nil, ctx.Err()
	}
	if h := c.health.Load(); h.err != nil {
		lease.Release()
		c.nudge()
		return nil, fmt.Errorf("%w (client %s): %v", ErrUnreachable, c.id, h.err)
	}
	return lease, nil
}

// Retain says which URIs tenants use now. A client for any other URI is closed as soon as no
// request uses it.
func (p *Pool) Retain(uris map[string]bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for uri, c := range p.clients {
		c.retired = !uris[uri]
		if c.retired && c.inUse == 0 {
			p.closeLocked(c, closeUnused)
		}
	}
}

// Len is the number of open clients.
func (p *Pool) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.clients)
}

// Run closes idle clients until ctx ends.
func (p *Pool) Run(ctx context.Context) {
	tick := time.NewTicker(min(p.opts.IdleTimeout/2, 30*time.Second))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			p.closeIdle(time.Now())
		}
	}
}

func (p *Pool) closeIdle(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.clients {
		if c.inUse == 0 && now.Sub(c.lastUsed) >= p.opts.IdleTimeout {
			p.closeLocked(c, closeIdle)
		}
	}
}

// Close closes every client and waits for their disconnection.
func (p *Pool) Close() {
	p.mu.Lock()
	p.closed = true
	for _, c := range p.clients {
		p.closeLocked(c, closeShutdown)
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *Pool) openLocked(uri string) (*pooledClient, error) {
	sum := sha256.Sum256([]byte(uri))
	id := hex.EncodeToString(sum[:4])
	opts := options.Client().ApplyURI(uri)
	if opts.MaxPoolSize == nil {
		opts.SetMaxPoolSize(p.opts.MaxConnsPerClient)
	}
	if opts.ServerSelectionTimeout == nil {
		opts.SetServerSelectionTimeout(p.opts.ServerSelectionTimeout)
	}
	if opts.MaxConnIdleTime == nil {
		opts.SetMaxConnIdleTime(time.Minute)
	}
	client, err := mongo.Connect(opts)
	if err != nil {
		// The driver's message may quote parts of the URI; keep it out of answers and logs.
		return nil, fmt.Errorf("tenancy: client %s: the connection URI is not usable", id)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &pooledClient{
		uri: uri, id: id, client: client, lastUsed: time.Now(),
		ctx: ctx, cancel: cancel,
		checked: make(chan struct{}), recheck: make(chan struct{}, 1),
	}
	c.elem = p.lru.PushFront(c)
	p.clients[uri] = c
	p.open.Set(float64(len(p.clients)))
	p.wg.Add(1)
	go p.monitor(c)
	p.opts.Logger.Info("mongodb client opened", "client", c.id, "clients", len(p.clients))
	return c, nil
}

// evictLocked closes the least recently used idle clients while there are too many.
func (p *Pool) evictLocked() {
	for e := p.lru.Back(); e != nil && len(p.clients) > p.opts.MaxClients; {
		c := e.Value.(*pooledClient)
		e = e.Prev()
		if c.inUse == 0 {
			p.closeLocked(c, closeEvicted)
		}
	}
}

func (p *Pool) closeLocked(c *pooledClient, reason string) {
	if c.closed {
		return
	}
	c.closed = true
	delete(p.clients, c.uri)
	p.lru.Remove(c.elem)
	p.open.Set(float64(len(p.clients)))
	p.closes.WithLabelValues(reason).Inc()
	c.cancel()
	p.opts.Logger.Info("mongodb client closed", "client", c.id, "reason", reason, "clients", len(p.clients))
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = c.client.Disconnect(ctx)
	}()
}

// monitor pings c every HealthInterval (or sooner when nudged) until it is closed.
func (p *Pool) monitor(c *pooledClient) {
	defer p.wg.Done()
	first := true
	var wasOK bool
	for {
		ctx, cancel := context.WithTimeout(c.ctx, p.opts.PingTimeout)
		err := c.client.Ping(ctx, nil)
		cancel()
		if c.ctx.Err() != nil {
			if first {
				c.health.Store(&health{err: ErrPoolClosed, at: time.Now()})
				close(c.checked)
			}
			return
		}
		c.health.Store(&health{err: err, at: time.Now()})
		switch {
		case err != nil && (first || wasOK):
			p.opts.Logger.Warn("mongodb unreachable", "client", c.id, "error", err.Error())
		case err == nil && !first && !wasOK:
			p.opts.Logger.Info("mongodb reachable again", "client", c.id)
		}
		wasOK = err == nil
		if first {
			first = false
			close(c.checked)
		}
		t := time.NewTimer(p.opts.HealthInterval)
		select {
		case <-c.ctx.Done():
			t.Stop()
			return
		case <-c.recheck:
			t.Stop()
		case <-t.C:
		}
	}
}

// nudge asks for a ping soon, at most once a second.
func (c *pooledClient) nudge() {
	if h := c.health.Load(); h != nil && time.Since(h.at) < time.Second {
		return
	}
	select {
	case c.recheck <- struct{}{}:
	default:
	}
}
