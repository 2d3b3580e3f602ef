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

// dockerStage is one stage of a Dockerfile: its base, its name and its instructions, with
// continuation lines joined.
type dockerStage struct {
	from, name string
	lines      []string
}

// instruction returns the arguments of the stage's first instruction named op whose arguments
// start with prefix, and whether there is one.
func (s dockerStage) instruction(op, prefix string) (string, bool) {
	for _, l := range s.lines {
		if args, ok := strings.CutPrefix(l, op+" "); ok && strings.HasPrefix(args, prefix) {
			return args, true
		}
	}
	return "", false
}

// parseDockerfile splits a Dockerfile into its stages, by name.
func parseDockerfile(t *testing.T, df string) map[string]dockerStage {
	t.Helper()
	stages := map[string]dockerStage{}
	var cur *dockerStage
	flush := func() {
		if cur != nil {
			stages[cur.name] = *cur
		}
	}
	joined := strings.ReplaceAll(df, "\\\n", " ")
	for _, line := range strings.Split(joined, "\n") {
		line = strings.Join(strings.Fields(line), " ")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if args, ok := strings.CutPrefix(line, "FROM "); ok {
			flush()
			f := strings.Fields(args)
			if len(f) > 0 && strings.HasPrefix(f[0], "--platform=") {
				f = f[1:]
			}
			if len(f) != 3 || !strings.EqualFold(f[1], "AS") {
				t.Fatalf("FROM %s: want every stage named (FROM <image> AS <name>)", args)
			}
			cur = &dockerStage{from: f[0], name: f[2]}
			continue
		}
		if cur != nil {
			cur.lines = append(cur.lines, line)
		}
	}
	flush()
	return stages
}

// shellWords splits a command line into words, honouring double quotes (all the Dockerfile's
// build commands use).
func shellWords(line string) []string {
	var words []string
	var word strings.Builder
	inWord, quoted := false, false
	for _, r := range line {
		switch {
		case r == '"':
			quoted, inWord = !quoted, true
		case r == ' ' && !quoted:
			if inWord {
				words = append(words, word.String())
				word.Reset()
			}
			inWord = false
		default:
			word.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, word.String())
	}
	return words
}

var numericNonRootUser = regexp.MustCompile(`^[1-9][0-9]*(:[1-9][0-9]*)?$`)

// TestDockerfile checks build/Dockerfile without Docker (these machines have none): a target
// for every name make images builds, each a static (CGO off) binary on distroless/static or
// scratch, run as a non-root user; and the build stage's own go build command, run here,
// makes that binary and stamps the version it prints for -version.
func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(root, "build", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	if others, _ := filepath.Glob(filepath.Join(root, "build", "*", "Dockerfile")); len(others) > 0 {
		t.Errorf("%v: the images are targets of build/Dockerfile; make images does not build these", others)
	}
	stages := parseDockerfile(t, string(data))
	dir := t.TempDir()
	built := map[string]bool{} // build stages whose command has run
	for _, name := range imageNames(t) {
		t.Run(name, func(t *testing.T) {
			final, ok := stages[name]
			if !ok {
				t.Fatalf("no target %q in build/Dockerfile (make images builds it)", name)
			}
			if !strings.HasPrefix(final.from, "gcr.io/distroless/static") && final.from != "scratch" {
				t.Errorf("target %s is FROM %s; want distroless/static or scratch", name, final.from)
			}
			if user, ok := final.instruction("USER", ""); !ok || !numericNonRootUser.MatchString(user) {
				t.Error("the target sets no numeric non-root USER (the restricted Pod Security Standard needs runAsNonRoot to be checkable)")
			}
			if _, ok := final.instruction("ENTRYPOINT", `["/`+name+`"]`); !ok {
				t.Errorf("the target's ENTRYPOINT is not /%s", name)
			}
			copyArgs, ok := final.instruction("COPY", "--from=")
			f := strings.Fields(copyArgs)
			if !ok || len(f) != 3 || f[1] != "/out/"+name || f[2] != "/"+name {
				t.Fatalf("the target copies %q; want COPY --from=<build stage> /out/%s /%s", copyArgs, name, name)
			}
			builder, ok := stages[strings.TrimPrefix(f[0], "--from=")]
			if !ok {
				t.Fatalf("the target copies from %s, which is not a stage", f[0])
			}

			var env, goBuild string
			for _, l := range builder.lines {
				if run, ok := strings.CutPrefix(l, "RUN "); ok && strings.Contains(run, " go build ") {
					env, goBuild, _ = strings.Cut(run, "go build ")
				}
			}
			if goBuild == "" {
				t.Fatalf("stage %s has no go build", builder.name)
			}
			if !strings.Contains(env, "CGO_ENABLED=0") {
				t.Error("the build does not set CGO_ENABLED=0 (the binary must be static)")
			}
			args := shellWords(goBuild)
			if !slices.Contains(args, "-trimpath") {
				t.Error("the build does not use -trimpath")
			}
			workdir, _ := builder.instruction("WORKDIR", "/src")
			pkgDir, _ := strings.CutPrefix(strings.TrimPrefix(workdir, "/src"), "/")
			if pkgDir != "cmd/"+name && !slices.Contains(args, "./cmd/"+name) {
				t.Fatalf("stage %s (in /src/%s) does not build ./cmd/%s: go build %s", builder.name, pkgDir, name, goBuild)
			}

			// The stage's own command, run here once per stage with two changes: the output goes
			// to a temporary directory, and -trimpath is dropped, so that the packages come from
			// the build cache the other tests filled and only the links are new.
			out := filepath.Join(dir, builder.name)
			if !built[builder.name] {
				stamp := strings.NewReplacer("${VERSION}", "v0.0.0-packaging-test", "${COMMIT}", "c0ffee", "/out/", out+string(filepath.Separator))
				local := []string{"-C", filepath.Join(root, pkgDir), "build"}
				for _, a := range args {
					if a != "-trimpath" {
						local = append(local, stamp.Replace(a))
					}
				}
				command(t, nil, "go", local...)
				built[builder.name] = true
			}
			version, err := exec.Command(filepath.Join(out, name), "-version").CombinedOutput()
			if err != nil {
				t.Fatalf("%s -version: %v\n%s", name, err, version)
			}
			if s := string(version); !strings.Contains(s, "v0.0.0-packaging-test") || !strings.Contains(s, "c0ffee") {
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
