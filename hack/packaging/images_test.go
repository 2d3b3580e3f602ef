package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// imageNames reads IMAGE_NAMES from the Makefile: the images make images builds.
func imageNames(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^IMAGE_NAMES\s*:=\s*(.+)$`).FindSubmatch(data)
	if m == nil {
		t.Fatal("no IMAGE_NAMES in the Makefile")
	}
	return strings.Fields(string(m[1]))
}

var ldflagsPattern = regexp.MustCompile(`-ldflags "([^"]+)"`)

// TestDockerfiles checks each image's Dockerfile without Docker (these machines have none):
// one per name make images builds, a static (CGO off) binary on distroless/static or scratch,
// run as a non-root user, and version stamping that works: the binary built with the
// Dockerfile's own -ldflags prints the stamped version for -version.
func TestDockerfiles(t *testing.T) {
	names := imageNames(t)
	dirs, _ := filepath.Glob(filepath.Join(root, "build", "*", "Dockerfile"))
	var found []string
	for _, d := range dirs {
		found = append(found, filepath.Base(filepath.Dir(d)))
	}
	slices.Sort(found)
	want := slices.Sorted(slices.Values(names))
	if !slices.Equal(found, want) {
		t.Fatalf("build/*/Dockerfile for %v; IMAGE_NAMES in the Makefile is %v", found, want)
	}
	dir := t.TempDir()
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(root, "build", name, "Dockerfile"))
			if err != nil {
				t.Fatal(err)
			}
			df := string(data)
			stages := strings.Split(df, "\nFROM ")
			final := stages[len(stages)-1]
			if !strings.HasPrefix(final, "gcr.io/distroless/static") && !strings.HasPrefix(final, "scratch") {
				t.Errorf("the final stage is FROM %s; want distroless/static or scratch", strings.SplitN(final, "\n", 2)[0])
			}
			if !regexp.MustCompile(`(?m)^USER [1-9][0-9]*(:[1-9][0-9]*)?$`).MatchString(final) {
				t.Error("the final stage sets no numeric non-root USER (the restricted Pod Security Standard needs runAsNonRoot to be checkable)")
			}
			if !strings.Contains(final, `ENTRYPOINT ["/`+name+`"]`) {
				t.Errorf("the final stage's ENTRYPOINT is not /%s", name)
			}
			for _, w := range []string{"CGO_ENABLED=0", "-trimpath", "-o /out/" + name} {
				if !strings.Contains(df, w) {
					t.Errorf("the build does not use %s", w)
				}
			}
			m := ldflagsPattern.FindStringSubmatch(df)
			if m == nil {
				t.Fatal("no -ldflags: the version is not stamped")
			}
			ldflags := strings.NewReplacer("${VERSION}", "v0.0.0-packaging-test", "${COMMIT}", "c0ffee").Replace(m[1])
			// Built with this machine's default settings (not the Dockerfile's CGO_ENABLED=0), so
			// that the packages come from the build cache the other tests (and make devdb, with
			// -trimpath) filled: only the link is new.
			exe := filepath.Join(dir, name)
			if name == "devdb" { // its own module
				command(t, nil, "go", "-C", "cmd/devdb", "build", "-trimpath", "-ldflags", ldflags, "-o", exe, ".")
			} else {
				command(t, nil, "go", "build", "-ldflags", ldflags, "-o", exe, "./cmd/"+name)
			}
			out, err := exec.Command(exe, "-version").CombinedOutput()
			if err != nil {
				t.Fatalf("%s -version: %v\n%s", name, err, out)
			}
			if s := string(out); !strings.Contains(s, "v0.0.0-packaging-test") || !strings.Contains(s, "c0ffee") {
				t.Errorf("%s -version printed %q; want the stamped version and commit", name, s)
			}
		})
	}
}

// TestKindImagesAreBuilt checks that every image the kind demo runs (the chart with
// config/kind/values.yaml, the injected sidecar, config/kind/dev, config/samples) is one that
// make images builds under the Makefile's default IMAGE_REGISTRY and IMAGE_TAG, and is never
// pulled (kind load puts it on the node).
func TestKindImagesAreBuilt(t *testing.T) {
	names := imageNames(t)
	var objs []*unstructured.Unstructured
	objs = append(objs, decode(t, renderChart(t, chartCases["kind"]))...)
	objs = append(objs, kustomizeBuild(t, "config/kind/dev")...)
	objs = append(objs, kustomizeBuild(t, "config/samples")...)
	seen := 0
	for _, o := range objs {
		if o.GetKind() != "Deployment" {
			continue
		}
		cs, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
		for _, c := range cs {
			c := c.(map[string]any)
			image, _ := c["image"].(string)
			repo, tag, _ := strings.Cut(image, ":")
			reg, name, _ := strings.Cut(repo, "/")
			if reg != "authmesh" || tag != "dev" || !slices.Contains(names, name) {
				t.Errorf("%s runs %s; want authmesh/<one of %v>:dev, built by make images", o.GetName(), image, names)
			}
			seen++
		}
	}
	if seen < 5 {
		t.Errorf("found %d containers in the kind demo; want at least 5", seen)
	}
}
