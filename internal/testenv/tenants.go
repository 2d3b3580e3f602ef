package testenv

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authmeshv1alpha1 "github.com/authmesh/authmesh/api/v1alpha1"
)

// CreateTenants creates newTenant(name) for every name, workers at a time, as a platform team
// applying many manifests at once would.
func CreateTenants(ctx context.Context, c client.Client, names []string, workers int, newTenant func(name string) *authmeshv1alpha1.Tenant) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(max(workers, 1))
	for _, name := range names {
		g.Go(func() error {
			if err := c.Create(ctx, newTenant(name)); err != nil {
				return fmt.Errorf("creating Tenant %s: %w", name, err)
			}
			return nil
		})
	}
	return g.Wait()
}

// UpdateTenant reads Tenant name and hands it to change, which edits it and writes it back (to
// the object or its status) and returns the write's error. On a conflict, most often with
// the controller's own status writes, it reads the Tenant again and retries.
func UpdateTenant(ctx context.Context, c client.Client, name string, change func(*authmeshv1alpha1.Tenant) error) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var tn authmeshv1alpha1.Tenant
		if err := c.Get(ctx, client.ObjectKey{Name: name}, &tn); err != nil {
			return err
		}
		return change(&tn)
	})
}

// TenantReady reports whether a Tenant's current generation is Ready: phase Ready, condition
// Ready=True, observedGeneration current.
func TenantReady(t *authmeshv1alpha1.Tenant) bool {
	c := meta.FindStatusCondition(t.Status.Conditions, "Ready")
	return t.Status.Phase == authmeshv1alpha1.TenantPhaseReady && c != nil && c.Status == metav1.ConditionTrue &&
		t.Status.ObservedGeneration == t.Generation
}

// ReadyWatch records, from a watch on Tenants, when each Tenant was first seen Ready.
type ReadyWatch struct {
	mu      sync.Mutex
	readyAt map[string]time.Time
	cancel  context.CancelFunc
	done    chan struct{}
}

// WatchTenantsReady starts a ReadyWatch; start it before creating the Tenants it is to time.
func WatchTenantsReady(ctx context.Context, cfg *rest.Config) (*ReadyWatch, error) {
	c, err := cache.New(cfg, cache.Options{Scheme: NewScheme()})
	if err != nil {
		return nil, err
	}
	informer, err := c.GetInformer(ctx, &authmeshv1alpha1.Tenant{})
	if err != nil {
		return nil, err
	}
	w := &ReadyWatch{readyAt: map[string]time.Time{}, done: make(chan struct{})}
	observe := func(obj any) {
		t, ok := obj.(*authmeshv1alpha1.Tenant)
		if !ok || !TenantReady(t) {
			return
		}
		now := time.Now()
		w.mu.Lock()
		if _, seen := w.readyAt[t.Name]; !seen {
			w.readyAt[t.Name] = now
		}
		w.mu.Unlock()
	}
	if _, err := informer.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    observe,
		UpdateFunc: func(_, obj any) { observe(obj) },
	}); err != nil {
		return nil, err
	}
	ctx, w.cancel = context.WithCancel(ctx)
	go func() { _ = c.Start(ctx); close(w.done) }()
	if !c.WaitForCacheSync(ctx) {
		w.Stop()
		return nil, errors.New("testenv: the Tenant watch did not sync")
	}
	return w, nil
}

// Ready returns how many of names have been seen Ready.
func (w *ReadyWatch) Ready(names []string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, name := range names {
		if _, ok := w.readyAt[name]; ok {
			n++
		}
	}
	return n
}

// Wait waits until every one of names has been seen Ready, and returns when each was.
func (w *ReadyWatch) Wait(ctx context.Context, names []string) (map[string]time.Time, error) {
	for {
		if n := w.Ready(names); n == len(names) {
			break
		} else if ctx.Err() != nil {
			return nil, fmt.Errorf("%d of %d Tenants Ready: %w", n, len(names), ctx.Err())
		}
		time.Sleep(20 * time.Millisecond)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]time.Time, len(names))
	for _, name := range names {
		out[name] = w.readyAt[name]
	}
	return out, nil
}

// Stop ends the watch.
func (w *ReadyWatch) Stop() {
	w.cancel()
	<-w.done
}
