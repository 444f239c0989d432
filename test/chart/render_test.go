// Package chart tests charts/shoal without a cluster: it renders the chart with the real helm
// binary and checks what comes out against the Kubernetes API types (strictly: a misspelled
// field fails), against the agent's own config loader and certificate check, and runs the
// chart's init script on real MySQL and MariaDB servers.
package chart

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

const (
	release   = "orders"
	namespace = "shop"
	// fullname is the chart's name for everything of the release (and the shoal cluster's).
	fullname = "orders-shoal"
	// kubeVersion is the test cluster's: helm template assumes one unless told.
	kubeVersion = "1.37.2"
)

// repoRoot is the repository's top directory, found from this file.
func repoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the test's source file")
	}
	return filepath.Join(filepath.Dir(file), "..", "..")
}

func chartDir(t testing.TB) string { return filepath.Join(repoRoot(t), "charts", "shoal") }

func cacheDir() string {
	if d := os.Getenv("SHOAL_CACHE"); d != "" {
		return d
	}
	return "/var/cache/shoal-test"
}

// helmFlag names another helm binary: go test ./test/chart -args -helm=/path/to/helm.
var helmFlag = flag.String("helm", "", "helm binary (default: the test cluster's, built by make deps)")

// helmBinary is the helm v3.22.0 that `make deps` builds with the test cluster's binaries
// (test/rig/install.sh kube). A missing helm is a setup problem to fix, never a reason to skip.
func helmBinary(t testing.TB) string {
	t.Helper()
	bin := *helmFlag
	if bin == "" {
		bin = filepath.Join(cacheDir(), "kube-v1.37.2", "bin", "helm")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("helm is not installed (%v); install it with `make deps` or `bash test/rig/install.sh kube`", err)
	}
	return bin
}

// helm runs helm with args and returns its standard output, or an error carrying its standard
// error. HOME and the helm directories point into a temporary directory: no user state is read.
func helm(t testing.TB, args ...string) (string, error) {
	t.Helper()
	home := t.TempDir()
	cmd := exec.Command(helmBinary(t), args...)
	cmd.Dir = repoRoot(t)
	cmd.Env = []string{"HOME=" + home, "HELM_CACHE_HOME=" + home, "HELM_CONFIG_HOME=" + home,
		"HELM_DATA_HOME=" + home, "PATH=/usr/bin:/bin"}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// valuesFile writes YAML values to a temporary file and returns its path, which holds no comma
// (helm splits --values at commas, and t.TempDir is named after the test).
func valuesFile(t testing.TB, values string) string {
	t.Helper()
	f, err := os.CreateTemp("", "shoal-chart-values-*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(f.Name()) })
	if _, err := f.WriteString(values); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

// object is one rendered manifest: its kind and name, and its YAML.
type object struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
	raw []byte
}

// manifests is a rendered release, by "Kind/name".
type manifests map[string]object

// render runs helm template on the chart with the values files given (paths relative to the
// chart, or absolute) and splits the output into objects.
func render(t testing.TB, valueFiles ...string) (manifests, error) {
	t.Helper()
	args := []string{"template", release, chartDir(t), "--namespace", namespace, "--kube-version", kubeVersion}
	for _, f := range valueFiles {
		if !filepath.IsAbs(f) {
			f = filepath.Join(chartDir(t), f)
		}
		args = append(args, "--values", f)
	}
	out, err := helm(t, args...)
	if err != nil {
		return nil, err
	}
	return split(out)
}

func mustRender(t testing.TB, valueFiles ...string) manifests {
	t.Helper()
	m, err := render(t, valueFiles...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// split cuts helm's output at its document markers.
func split(out string) (manifests, error) {
	m := manifests{}
	for doc := range strings.SplitSeq(out, "\n---\n") {
		doc = strings.TrimPrefix(doc, "---\n")
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		var o object
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			return nil, fmt.Errorf("a rendered document is not YAML: %w\n%s", err, doc)
		}
		if o.Kind == "" || o.Metadata.Name == "" {
			return nil, fmt.Errorf("a rendered document has no kind or name:\n%s", doc)
		}
		key := o.Kind + "/" + o.Metadata.Name
		if _, dup := m[key]; dup {
			return nil, fmt.Errorf("%s is rendered twice", key)
		}
		o.raw = []byte(doc)
		m[key] = o
	}
	return m, nil
}

func stripComments(doc string) string {
	var b strings.Builder
	for line := range strings.Lines(doc) {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line)
		}
	}
	return b.String()
}

// get strictly decodes the object kind/name into into: a field the type does not have fails.
func (m manifests) get(t testing.TB, kind, name string, into any) {
	t.Helper()
	o, ok := m[kind+"/"+name]
	if !ok {
		t.Fatalf("%s/%s not rendered; have %v", kind, name, m.keys())
	}
	if err := decodeStrict(o.raw, into); err != nil {
		t.Fatalf("%s/%s: %v", kind, name, err)
	}
}

// decodeStrict decodes YAML as the API server does with strict field validation: unknown and
// duplicate fields fail, and names match case-sensitively (encoding/json would take clusterIp
// for clusterIP).
func decodeStrict(y []byte, into any) error {
	j, err := yaml.YAMLToJSON(y)
	if err != nil {
		return err
	}
	strict, err := kjson.UnmarshalStrict(j, into)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

// has reports whether kind/name is rendered.
func (m manifests) has(kind, name string) bool {
	_, ok := m[kind+"/"+name]
	return ok
}

func (m manifests) keys() []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
