package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// programs maps the container names the manifests use to the program they run.
var programs = map[string]string{
	"manager":    "./cmd/controller",
	"authserver": "./cmd/authserver",
	"devdb":      "./cmd/devdb",
	"devmail":    "./cmd/devmail",
	"app":        "./cmd/demoapp", // the demo app in config/samples
}

// flagPattern matches a flag in a program's -h output.
var flagPattern = regexp.MustCompile(`(?m)^\s+-([a-zA-Z0-9][-a-zA-Z0-9]*)`)

var (
	flagsOnce sync.Once
	flagsErr  string
	flagSets  map[string][]string // program -> its flags
)

// definedFlags builds every program once (devdb: the binary make tools built, AUTHMESH_DEVDB,
// when set) and reads its flags from -h.
func definedFlags(t *testing.T) map[string][]string {
	t.Helper()
	flagsOnce.Do(func() {
		dir, err := os.MkdirTemp("", "authmesh-flags-")
		if err != nil {
			flagsErr = err.Error()
			return
		}
		defer os.RemoveAll(dir)
		flagSets = map[string][]string{}
		for _, pkg := range programs {
			if _, done := flagSets[pkg]; done {
				continue
			}
			exe := filepath.Join(dir, filepath.Base(pkg))
			var err error
			switch {
			case pkg == "./cmd/devdb" && os.Getenv("AUTHMESH_DEVDB") != "":
				exe = os.Getenv("AUTHMESH_DEVDB")
			case pkg == "./cmd/devdb": // its own module; flags as make devdb builds it
				_, err = commandErr(nil, "go", "-C", "cmd/devdb", "build", "-trimpath", "-o", exe, ".")
			default: // default settings: the packages come from the other tests' build cache
				_, err = commandErr(nil, "go", "build", "-o", exe, pkg)
			}
			if err != nil {
				flagsErr = "building " + pkg + ": " + err.Error()
				return
			}
			// -h prints the flags and exits 0 or 2, depending on the program.
			out, _ := exec.Command(exe, "-h").CombinedOutput()
			for _, m := range flagPattern.FindAllStringSubmatch(string(out), -1) {
				flagSets[pkg] = append(flagSets[pkg], m[1])
			}
			if len(flagSets[pkg]) == 0 {
				flagsErr = pkg + " -h listed no flags:\n" + string(out)
				return
			}
		}
	})
	if flagsErr != "" {
		t.Fatal(flagsErr)
	}
	return flagSets
}

// checkFlags fails when a container of a Deployment passes a -flag, or (auth server) sets an
// AUTHMESH_* variable, that its program does not define: such a mistake would otherwise only
// show as a crash-looping pod. Containers of programs not in programs are reported too.
func checkFlags(t *testing.T, source string, objs []*unstructured.Unstructured) {
	t.Helper()
	defined := definedFlags(t)
	for _, o := range objs {
		if o.GetKind() != "Deployment" {
			continue
		}
		cs, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
		for _, c := range cs {
			c := c.(map[string]any)
			name, _ := c["name"].(string)
			pkg, ok := programs[name]
			if !ok {
				t.Errorf("%s: container %s of %s runs no program this test knows; add it to programs", source, name, o.GetName())
				continue
			}
			args, _, _ := unstructured.NestedStringSlice(c, "args")
			for i, a := range args {
				if !strings.HasPrefix(a, "-") {
					// The value of the flag before it ("-listen", "0.0.0.0:1025"); these programs take no arguments.
					if i == 0 || !strings.HasPrefix(args[i-1], "-") || strings.Contains(args[i-1], "=") {
						t.Errorf("%s: %s passes %q, which is neither a flag nor a flag's value", source, o.GetName(), a)
					}
					continue
				}
				f := strings.TrimLeft(strings.SplitN(a, "=", 2)[0], "-")
				if !slices.Contains(defined[pkg], f) {
					t.Errorf("%s: %s passes %q, but %s defines no flag -%s", source, o.GetName(), a, pkg, f)
				}
			}
			if name != "authserver" {
				continue
			}
			env, _, _ := unstructured.NestedSlice(c, "env")
			for _, e := range env {
				n, _ := e.(map[string]any)["name"].(string)
				f, ok := strings.CutPrefix(n, "AUTHMESH_")
				if !ok {
					continue
				}
				if f = strings.ReplaceAll(strings.ToLower(f), "_", "-"); !slices.Contains(defined[pkg], f) {
					t.Errorf("%s: %s sets %s, but the auth server defines no flag -%s", source, o.GetName(), n, f)
				}
			}
		}
	}
}

// TestChartArgsAreFlags checks the flags of every program the chart runs, with every value set.
func TestChartArgsAreFlags(t *testing.T) {
	for name, values := range chartCases {
		checkFlags(t, "chart "+name, decode(t, renderChart(t, values)))
	}
}
