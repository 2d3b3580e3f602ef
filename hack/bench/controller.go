package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	authmeshv1alpha1 "github.com/authmesh/authmesh/api/v1alpha1"
	"github.com/authmesh/authmesh/controllers"
	"github.com/authmesh/authmesh/internal/keys"
	"github.com/authmesh/authmesh/internal/tenantdb"
	"github.com/authmesh/authmesh/internal/testenv"
)

// The controller rows time n Tenants, created at once, until every one is Ready, with the
// controller binary running against a fresh API server (envtest: kube-apiserver and etcd) and
// a fresh dev database. Their baseline, in the same run, is the floor: the writes a reconcile
// cannot avoid, made directly by this program with as many workers as the controller has. Per
// Tenant: create it, add the finalizer, create its database's collections and indexes, create
// its two Secrets, write its status. The floor's API part and database part are timed apart,
// which shows where the dev database limits the controller.

const benchNamespace = "authmesh-system"

// controllerPlane is a fresh API server and dev database.
type controllerPlane struct {
	api        *testenv.APIServer
	db         *testenv.Mongo
	dir        string
	kubeconfig string
}

func startControllerPlane() (*controllerPlane, error) {
	p := &controllerPlane{}
	var err error
	if p.dir, err = os.MkdirTemp("", "authmesh-bench-controller-"); err != nil {
		return nil, err
	}
	if p.api, err = testenv.StartAPIServer(testenv.APIServerOptions{}); err != nil {
		p.Stop()
		return nil, err
	}
	if p.db, err = testenv.StartMongo(); err != nil {
		p.Stop()
		return nil, err
	}
	p.kubeconfig = filepath.Join(p.dir, "kubeconfig")
	if err := os.WriteFile(p.kubeconfig, p.api.Env.KubeConfig, 0o600); err != nil {
		p.Stop()
		return nil, err
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: benchNamespace}}
	if err := p.api.Client.Create(context.Background(), ns); err != nil {
		p.Stop()
		return nil, err
	}
	return p, nil
}

func (p *controllerPlane) Stop() {
	if p.db != nil {
		p.db.Stop()
	}
	if p.api != nil {
		_ = p.api.Stop()
	}
	_ = os.RemoveAll(p.dir)
}

func benchTenantNames(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = "bench-" + strconv.Itoa(i)
	}
	return names
}

func benchTenant(name string) *authmeshv1alpha1.Tenant {
	return &authmeshv1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: authmeshv1alpha1.TenantSpec{DisplayName: name, Email: authmeshv1alpha1.EmailSpec{From: "no-reply@bench.example"}}}
}

// controllerRun is one timing of n Tenants.
type controllerRun struct {
	total       time.Duration // from the first create to the last Tenant Ready (the floor: to its last write)
	api, db     time.Duration // the floor's time in API writes and in database calls, summed over its workers
	cpuSeconds  float64       // the controller process's CPU time
	peakRSSMiB  float64
	firstReady  time.Duration
	medianReady time.Duration
}

// runController times n Tenants to Ready with the controller binary at workers concurrent
// reconciles.
func runController(ctx context.Context, controllerBin string, n, workers int) (controllerRun, error) {
	var res controllerRun
	p, err := startControllerPlane()
	if err != nil {
		return res, err
	}
	defer p.Stop()
	proc, err := testenv.StartProcess("controller", controllerBin, filepath.Join(p.dir, "controller.log"),
		"-kubeconfig", p.kubeconfig, "-namespace", benchNamespace, "-auth-server-url", "http://auth.bench.example",
		"-mongodb-uri", p.db.URI, "-leader-elect=false", "-webhook-port", "0",
		"-metrics-bind-address", "0", "-health-probe-bind-address", freeAddr(),
		"-max-concurrent-reconciles", strconv.Itoa(workers))
	if err != nil {
		return res, err
	}
	defer proc.Stop(10 * time.Second)
	watch, err := testenv.WatchTenantsReady(ctx, p.api.Config)
	if err != nil {
		return res, err
	}
	defer watch.Stop()
	// One Tenant first, untimed: the controller's caches have synced and its database client
	// is connected when the timing starts, as the floor's clients are.
	warmup := []string{"warmup"}
	if err := testenv.CreateTenants(ctx, p.api.Client, warmup, 1, benchTenant); err != nil {
		return res, err
	}
	warmCtx, cancelWarm := context.WithTimeout(ctx, time.Minute)
	defer cancelWarm()
	if _, err := watch.Wait(warmCtx, warmup); err != nil {
		return res, fmt.Errorf("warm-up Tenant: %w\ncontroller log:\n%s", err, proc.Tail(20))
	}
	names := benchTenantNames(n)
	cpuBefore := cpuSeconds(proc.Pid())
	began := time.Now()
	if err := testenv.CreateTenants(ctx, p.api.Client, names, workers, benchTenant); err != nil {
		return res, err
	}
	waitCtx, cancel := context.WithTimeout(ctx, 20*time.Minute)
	defer cancel()
	readyAt, err := watch.Wait(waitCtx, names)
	if err != nil {
		return res, fmt.Errorf("%w\ncontroller log:\n%s", err, proc.Tail(20))
	}
	res.cpuSeconds = cpuSeconds(proc.Pid()) - cpuBefore
	res.peakRSSMiB = peakRSS(proc.Pid())
	took := make([]time.Duration, 0, n)
	for _, at := range readyAt {
		took = append(took, at.Sub(began))
	}
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	res.firstReady, res.medianReady, res.total = took[0], took[len(took)/2], took[len(took)-1]
	return res, nil
}

// runFloor makes the writes of n reconciles directly, workers at a time, each worker a Tenant's
// API writes and then its database's collections and indexes.
func runFloor(ctx context.Context, n, workers int) (controllerRun, error) {
	var res controllerRun
	p, err := startControllerPlane()
	if err != nil {
		return res, err
	}
	defer p.Stop()
	c := p.api.Client
	names := benchTenantNames(n)
	apiWrites := func(name string) error {
		t := benchTenant(name)
		if err := c.Create(ctx, t); err != nil {
			return err
		}
		controllerutil.AddFinalizer(t, controllers.Finalizer)
		if err := c.Update(ctx, t); err != nil {
			return err
		}
		key, err := keys.Generate(keys.EdDSA)
		if err != nil {
			return err
		}
		set := keys.PrivateSet{Keys: []jose.JSONWebKey{key}, ActiveKID: key.KeyID}
		jwks, err := set.MarshalJWKS()
		if err != nil {
			return err
		}
		labels := map[string]string{controllers.LabelTenant: name}
		for _, s := range []*corev1.Secret{
			{ObjectMeta: metav1.ObjectMeta{Name: controllers.DBSecretName(name), Namespace: benchNamespace, Labels: labels},
				Data: map[string][]byte{"uri": []byte(p.db.URI), "database": []byte(controllers.DatabasePrefix + name)}},
			{ObjectMeta: metav1.ObjectMeta{Name: controllers.KeysSecretName(name), Namespace: benchNamespace, Labels: labels},
				Data: map[string][]byte{keys.SecretKeyJWKS: jwks, keys.SecretKeyActiveKID: []byte(key.KeyID)}},
		} {
			if err := c.Create(ctx, s); err != nil {
				return err
			}
		}
		now := metav1.Now()
		t.Status = authmeshv1alpha1.TenantStatus{Phase: authmeshv1alpha1.TenantPhaseReady, ObservedGeneration: t.Generation,
			DatabaseName: controllers.DatabasePrefix + name, ActiveKeyID: key.KeyID,
			Conditions: []metav1.Condition{{Type: controllers.ConditionReady, Status: metav1.ConditionTrue, Reason: controllers.ReasonReady, LastTransitionTime: now}}}
		return c.Status().Update(ctx, t)
	}
	dbWrites := func(name string) error {
		_, err := tenantdb.EnsureSchema(ctx, p.db.Client.Database(controllers.DatabasePrefix+name))
		return err
	}
	var mu sync.Mutex
	timed := func(sum *time.Duration, f func(string) error, name string) error {
		began := time.Now()
		err := f(name)
		mu.Lock()
		*sum += time.Since(began)
		mu.Unlock()
		return err
	}
	began := time.Now()
	var g errgroup.Group
	g.SetLimit(workers)
	for _, name := range names {
		g.Go(func() error {
			if err := timed(&res.api, apiWrites, name); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			if err := timed(&res.db, dbWrites, name); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			return nil
		})
	}
	err = g.Wait()
	res.total = time.Since(began)
	return res, err
}

// measureControllers runs, per size, the floor and the controller interleaved (floor,
// controller, then controller, floor for the next round), and returns the table's rows.
func measureControllers(ctx context.Context, controllerBin string, sizes []int, rounds, workers int) ([]Row, map[string]any, error) {
	var rows []Row
	meta := map[string]any{"workers": workers}
	for _, n := range sizes {
		var ctrlRuns, floorRuns []controllerRun
		r := rounds
		if n >= 1000 {
			r = 1 // minutes each; one of each keeps make bench under ten minutes
		}
		for round := range r {
			order := []bool{false, true}
			if round%2 == 1 {
				order = []bool{true, false}
			}
			for _, isController := range order {
				if isController {
					res, err := runController(ctx, controllerBin, n, workers)
					if err != nil {
						return nil, nil, fmt.Errorf("controller, %d Tenants: %w", n, err)
					}
					fmt.Fprintf(os.Stderr, "controller %5d Tenants: all Ready in %6.2f s (first %.2f s, median %.2f s), CPU %.1f s, RSS %.0f MiB\n",
						n, res.total.Seconds(), res.firstReady.Seconds(), res.medianReady.Seconds(), res.cpuSeconds, res.peakRSSMiB)
					ctrlRuns = append(ctrlRuns, res)
				} else {
					res, err := runFloor(ctx, n, workers)
					if err != nil {
						return nil, nil, fmt.Errorf("floor, %d Tenants: %w", n, err)
					}
					fmt.Fprintf(os.Stderr, "floor      %5d Tenants: %6.2f s (time in API writes %.2f s, in the database %.2f s, over %d workers)\n",
						n, res.total.Seconds(), res.api.Seconds(), res.db.Seconds(), workers)
					floorRuns = append(floorRuns, res)
				}
			}
		}
		c, f := medianRun(ctrlRuns), medianRun(floorRuns)
		note := fmt.Sprintf("%d round(s), %d workers, fresh envtest API server and dev database each run; the floor's workers spent %.0f%% of their time in the dev database; controller CPU %.1f s, peak RSS %.0f MiB, median Tenant Ready after %.1f s",
			r, workers, 100*f.db.Seconds()/(f.api+f.db).Seconds(), c.cpuSeconds, c.peakRSSMiB, c.medianReady.Seconds())
		rows = append(rows, row(fmt.Sprintf("controller: %d Tenants to Ready", n), c.total.Seconds(), "s", f.total.Seconds(),
			"floor: the same writes made directly", note))
		meta[strconv.Itoa(n)] = map[string]any{"rounds": r, "controller_s": c.total.Seconds(), "floor_s": f.total.Seconds(),
			"floor_api_s": f.api.Seconds(), "floor_db_s": f.db.Seconds(), "controller_cpu_s": c.cpuSeconds, "controller_peak_rss_mib": c.peakRSSMiB,
			"first_ready_s": c.firstReady.Seconds(), "median_ready_s": c.medianReady.Seconds()}
	}
	return rows, meta, nil
}

// medianRun is the run of median total time.
func medianRun(runs []controllerRun) controllerRun {
	sort.Slice(runs, func(i, j int) bool { return runs[i].total < runs[j].total })
	return runs[len(runs)/2]
}

// controllerOnly is `bench controller`: the controller rows alone.
func controllerOnly(args []string) error {
	fs := flag.NewFlagSet("controller", flag.ContinueOnError)
	bin := fs.String("controller", "bin/controller", "the controller binary")
	sizes := fs.String("sizes", "100,1000", "Tenant counts")
	rounds := fs.Int("rounds", 2, "A/B rounds below 1,000 Tenants (1,000 and up run once)")
	workers := fs.Int("workers", 4, "the controller's concurrent reconciles, and the floor's workers")
	if err := fs.Parse(args); err != nil {
		return err
	}
	rows, _, err := measureControllerSizes(context.Background(), *bin, *sizes, *rounds, *workers)
	if err != nil {
		return err
	}
	printTable(rows)
	return nil
}

// measureControllerSizes parses sizes ("100,1000") and runs measureControllers.
func measureControllerSizes(ctx context.Context, bin, sizes string, rounds, workers int) ([]Row, map[string]any, error) {
	var ns []int
	for _, f := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, nil, fmt.Errorf("tenant counts %q: want positive integers separated by commas", sizes)
		}
		ns = append(ns, n)
	}
	fmt.Fprintf(os.Stderr, "controller: Tenants to Ready at %v, %d workers (envtest API server, dev database)\n", ns, workers)
	return measureControllers(ctx, bin, ns, rounds, workers)
}
