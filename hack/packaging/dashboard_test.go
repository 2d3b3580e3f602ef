package packaging

import (
	"encoding/json"
	"go/scanner"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/authmesh/authmesh/authserver"
	"github.com/authmesh/authmesh/authserver/identity"
	"github.com/authmesh/authmesh/authserver/sessions"
	"github.com/authmesh/authmesh/controllers"
	"github.com/authmesh/authmesh/controllers/injection"
)

const dashboardFile = "charts/authmesh/dashboards/authmesh.json"

// describedMetrics builds each component's metrics on a fresh registry, as its binary does, and
// returns the names they register: those of every collector registered through a Registerer
// (Describe names vectors that have no series yet, which a scrape would not show), and those
// a Gather of the registry shows (authserver.New registers on the *prometheus.Registry itself).
func describedMetrics(t *testing.T) map[string]string {
	t.Helper()
	names := map[string]string{}
	collect := func(component string, build func(r prometheus.Registerer, reg *prometheus.Registry) error) {
		reg := prometheus.NewRegistry()
		r := &recordingRegisterer{reg: reg}
		if err := build(r, reg); err != nil {
			t.Fatalf("building the %s metrics: %v", component, err)
		}
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatalf("gathering the %s metrics: %v", component, err)
		}
		for _, mf := range mfs {
			names[mf.GetName()] = component
		}
		ch := make(chan *prometheus.Desc)
		go func() {
			defer close(ch)
			for _, c := range r.collectors {
				c.Describe(ch)
			}
		}()
		for d := range ch {
			names[descName(d)] = component
		}
	}
	collect("controller", func(r prometheus.Registerer, _ *prometheus.Registry) error {
		if _, err := controllers.NewMetrics(r, api.Client); err != nil {
			return err
		}
		_, err := injection.NewMetrics(r)
		return err
	})
	collect("authserver", func(r prometheus.Registerer, reg *prometheus.Registry) error {
		srv, err := authserver.New(authserver.DefaultConfig(), nil, reg)
		if err != nil {
			return err
		}
		t.Cleanup(srv.Close)
		sess, err := sessions.New(sessions.Options{Registry: srv.Registry, Decoder: srv.Decoder, Registerer: r})
		if err != nil {
			return err
		}
		_, err = identity.New(srv, identity.Options{Sessions: sess, Registerer: r})
		return err
	})
	return names
}

// recordingRegisterer registers on a registry and remembers the collectors, to describe them.
type recordingRegisterer struct {
	reg        *prometheus.Registry
	collectors []prometheus.Collector
}

func (r *recordingRegisterer) Register(c prometheus.Collector) error {
	if err := r.reg.Register(c); err != nil {
		return err
	}
	r.collectors = append(r.collectors, c)
	return nil
}

func (r *recordingRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

func (r *recordingRegisterer) Unregister(c prometheus.Collector) bool { return r.reg.Unregister(c) }

var descNamePattern = regexp.MustCompile(`fqName: "([^"]+)"`)

func descName(d *prometheus.Desc) string {
	if m := descNamePattern.FindStringSubmatch(d.String()); m != nil {
		return m[1]
	}
	return ""
}

// scannedMetrics returns every string literal of the form authmesh_<component>_... in the
// non-test Go files of the parts: the metric names the code can register. It covers what
// describedMetrics cannot build from outside a package (the sidecar creates its registry
// inside sidecar.New), and cross-checks it.
func scannedMetrics(t *testing.T) map[string]string {
	t.Helper()
	name := regexp.MustCompile(`^authmesh_(controller|authserver|sidecar)_[a-z0-9_]+$`)
	names := map[string]string{}
	for _, dir := range []string{"controllers", "authserver", "sidecar", "guard"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			src, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			var s scanner.Scanner
			fset := token.NewFileSet()
			s.Init(fset.AddFile(path, -1, len(src)), src, nil, 0)
			for {
				_, tok, lit := s.Scan()
				if tok == token.EOF {
					return nil
				}
				if tok != token.STRING {
					continue
				}
				if v, err := strconv.Unquote(lit); err == nil && name.MatchString(v) {
					rel, _ := filepath.Rel(root, path)
					names[v] = rel
				}
			}
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return names
}

// TestDashboard checks the Grafana dashboard: it parses, every panel has queries on the
// dashboard's data source, every authmesh_* metric it queries is one the code registers, and
// the chart's ConfigMap carries the same JSON.
func TestDashboard(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(root, dashboardFile))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID    string           `json:"uid"`
		Title  string           `json:"title"`
		Panels []map[string]any `json:"panels"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("%s does not parse: %v", dashboardFile, err)
	}
	if dash.UID == "" || dash.Title == "" || len(dash.Panels) == 0 {
		t.Fatalf("%s: want a uid, a title and panels", dashboardFile)
	}

	described := describedMetrics(t)
	scanned := scannedMetrics(t)
	for n, component := range described {
		if strings.HasPrefix(n, "authmesh_") && scanned[n] == "" {
			t.Errorf("%s (%s) is registered but the source scan did not find it; the scan is broken", n, component)
		}
	}
	known := func(n string) bool {
		if described[n] != "" || scanned[n] != "" {
			return true
		}
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(n, suffix); ok && (described[base] != "" || scanned[base] != "") {
				return true
			}
		}
		return false
	}

	metric := regexp.MustCompile(`authmesh_[a-zA-Z0-9_]+`)
	used := map[string]bool{}
	for _, p := range dash.Panels {
		if p["type"] == "row" {
			continue
		}
		title, _ := p["title"].(string)
		targets, _ := p["targets"].([]any)
		if len(targets) == 0 {
			t.Errorf("panel %q has no queries", title)
		}
		if ds, _ := p["datasource"].(map[string]any); ds["uid"] != "${datasource}" {
			t.Errorf("panel %q does not use the dashboard's data source variable", title)
		}
		for _, tg := range targets {
			expr, _ := tg.(map[string]any)["expr"].(string)
			if expr == "" {
				t.Errorf("panel %q has a query without expr", title)
			}
			for _, n := range metric.FindAllString(expr, -1) {
				used[n] = true
				if !known(n) {
					t.Errorf("panel %q queries %s, which no collector registers", title, n)
				}
			}
		}
	}
	// The dashboard covers each part.
	for _, prefix := range []string{"authmesh_authserver_", "authmesh_sidecar_", "authmesh_controller_"} {
		if !slices.ContainsFunc(mapKeys(used), func(n string) bool { return strings.HasPrefix(n, prefix) }) {
			t.Errorf("the dashboard queries no %s* metric", prefix)
		}
	}
	var unused []string
	for n := range scanned {
		if !used[n] && !used[n+"_bucket"] {
			unused = append(unused, n)
		}
	}
	slices.Sort(unused)
	t.Logf("registered metrics without a panel: %v", unused)

	// The chart's optional ConfigMap holds the file as is.
	for _, o := range decode(t, renderChart(t, chartCases["full"])) {
		if o.GetKind() == "ConfigMap" && strings.HasSuffix(o.GetName(), "-dashboard") {
			got, _, _ := unstructuredString(o.Object, "data", "authmesh.json")
			if strings.TrimSpace(got) != strings.TrimSpace(string(data)) {
				t.Error("the dashboard ConfigMap does not hold " + dashboardFile + " as is")
			}
			return
		}
	}
	t.Error("the chart with grafana.dashboard.enabled renders no dashboard ConfigMap")
}

func mapKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func unstructuredString(obj map[string]any, fields ...string) (string, bool, error) {
	cur := any(obj)
	for _, f := range fields {
		m, ok := cur.(map[string]any)
		if !ok {
			return "", false, nil
		}
		cur = m[f]
	}
	s, ok := cur.(string)
	return s, ok, nil
}
