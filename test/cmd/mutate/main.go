// Command mutate checks that a package's tests notice the deletion of any of its decision
// branches: it deletes, one at a time, every switch case body, if body, else branch and single
// state-changing statement of the package's non-test files (see enumerate), and runs the
// package's tests against each mutant with go test -overlay, so the working tree is never
// touched. A mutant the tests pass SURVIVED: some behaviour no test pins down.
//
//	go run ./test/cmd/mutate -pkg agent/ha       # every mutation; exit 1 if any survives
//	go run ./test/cmd/mutate -list               # the mutations only
//	go run ./test/cmd/mutate -run RevokeLease    # those whose description matches
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "mutate:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("mutate", flag.ContinueOnError)
	pkg := fs.String("pkg", "agent/ha", "directory of the package to mutate")
	list := fs.Bool("list", false, "print the mutations without running them")
	only := fs.String("run", "", "only the mutations whose description matches this regular expression")
	workers := fs.Int("workers", runtime.GOMAXPROCS(0), "mutants tested at once")
	timeout := fs.Duration("timeout", time.Minute, "go test -timeout for each mutant")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *workers < 1 {
		return fmt.Errorf("-workers must be at least 1, got %d", *workers)
	}
	filter, err := regexp.Compile(*only)
	if err != nil {
		return fmt.Errorf("-run: %w", err)
	}
	files, err := snapshot(*pkg)
	if err != nil {
		return err
	}
	all, err := enumerateAll(files)
	if err != nil {
		return err
	}
	var muts []mutation
	for _, m := range all {
		if filter.MatchString(m.desc) {
			muts = append(muts, m)
		}
	}
	if *list {
		for _, m := range muts {
			fmt.Fprintf(stdout, "%s:%d: %s\n", m.file, m.line, m.desc)
		}
		fmt.Fprintf(stdout, "%d mutations\n", len(muts))
		return nil
	}

	target := *pkg
	if !filepath.IsAbs(target) {
		// go test takes a directory only as ./dir.
		target = "./" + filepath.ToSlash(filepath.Clean(target))
	}
	// Failing tests would count every mutant as killed.
	if out, err := goTest(target, *timeout); err != nil {
		return fmt.Errorf("the tests of %s fail before any mutation: %w\n%s", target, err, out)
	}
	tmp, err := os.MkdirTemp("", "mutate-")
	if err != nil {
		return fmt.Errorf("temp dir: %w", err)
	}
	defer os.RemoveAll(tmp)

	type result struct {
		v   verdict
		err error
	}
	done := make([]chan result, len(muts))
	for i := range done {
		done[i] = make(chan result, 1)
	}
	jobs := make(chan int)
	go func() {
		defer close(jobs)
		for i := range muts {
			jobs <- i
		}
	}()
	for range *workers {
		go func() {
			for i := range jobs {
				v, err := testMutant(muts[i], filepath.Join(tmp, strconv.Itoa(i)), target, *timeout)
				done[i] <- result{v, err}
			}
		}()
	}
	// Results are printed in file order as they come in.
	var killed, survived, broken int
	for i, m := range muts {
		r := <-done[i]
		if r.err != nil {
			return fmt.Errorf("%s:%d: %s: %w", m.file, m.line, m.desc, r.err)
		}
		switch r.v.outcome {
		case outcomeKilled:
			killed++
		case outcomeSurvived:
			survived++
		case outcomeNotCompiled:
			broken++
		}
		fmt.Fprintf(stdout, "%s:%d: %s: %s\n", m.file, m.line, m.desc, r.v)
	}
	fmt.Fprintf(stdout, "%d mutations: %d killed, %d survived, %d not compiled\n", len(muts), killed, survived, broken)
	// Mutants of the old sources tested against newer files, or against dependencies that
	// broke the tests meanwhile, prove nothing either way.
	if after, err := snapshot(*pkg); err != nil {
		return err
	} else if !maps.Equal(files, after) {
		return fmt.Errorf("the files of %s changed during the run: run it again", target)
	}
	if out, err := goTest(target, *timeout); err != nil {
		return fmt.Errorf("the tests of %s fail without mutation since the run began: run it again: %w\n%s", target, err, out)
	}
	if survived > 0 {
		return fmt.Errorf("%d of %d mutations survived the tests of %s", survived, len(muts), target)
	}
	return nil
}

// enumerateAll lists the mutations of the non-test files among files, in file name order.
func enumerateAll(files map[string]string) ([]mutation, error) {
	var muts []mutation
	for _, path := range slices.Sorted(maps.Keys(files)) {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		ms, err := enumerate(path, []byte(files[path]))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		muts = append(muts, ms...)
	}
	return muts, nil
}

// snapshot is the contents of the Go files in dir, tests included, by path: the mutants are
// made from it, and the run is void if the files no longer match it at the end.
func snapshot(dir string) (map[string]string, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, fmt.Errorf("package files: %w", err)
	}
	files := map[string]string{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("read: %w", err)
		}
		files[p] = string(b)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no Go files in %s", dir)
	}
	return files, nil
}

// testMutant runs the package's tests with the mutated file laid over the original, in dir.
func testMutant(m mutation, dir, target string, timeout time.Duration) (verdict, error) {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return verdict{}, fmt.Errorf("mutant dir: %w", err)
	}
	orig, err := filepath.Abs(m.file)
	if err != nil {
		return verdict{}, fmt.Errorf("original path: %w", err)
	}
	mutant := filepath.Join(dir, filepath.Base(m.file))
	if err := os.WriteFile(mutant, m.src, 0o644); err != nil {
		return verdict{}, fmt.Errorf("write mutant: %w", err)
	}
	overlay, err := json.Marshal(map[string]map[string]string{"Replace": {orig: mutant}})
	if err != nil {
		return verdict{}, fmt.Errorf("overlay: %w", err)
	}
	overlayPath := filepath.Join(dir, "overlay.json")
	if err := os.WriteFile(overlayPath, overlay, 0o644); err != nil {
		return verdict{}, fmt.Errorf("write overlay: %w", err)
	}
	out, err := goTest(target, timeout, "-overlay="+overlayPath)
	return judge(out, err)
}

// goTest runs the tests once, without vet: a mutant counts as killed by a test, not by a
// vet check.
func goTest(target string, timeout time.Duration, flags ...string) ([]byte, error) {
	args := append([]string{"test", "-count=1", "-vet=off", "-timeout=" + timeout.String()}, flags...)
	return exec.Command("go", append(args, target)...).CombinedOutput()
}

type outcome int

const (
	outcomeKilled outcome = iota
	outcomeSurvived
	outcomeNotCompiled
)

// verdict is what the tests made of one mutant.
type verdict struct {
	outcome outcome
	// detail names the failing tests, or quotes the compiler.
	detail string
}

func (v verdict) String() string {
	switch v.outcome {
	case outcomeKilled:
		return "KILLED by " + v.detail
	case outcomeSurvived:
		return "SURVIVED"
	}
	return "NOT COMPILED (" + v.detail + ")"
}

var (
	failRE     = regexp.MustCompile(`(?m)^\s*--- FAIL: (\S+)`)
	compileRE  = regexp.MustCompile(`(?m)^\S+\.go:\d+:\d+: .*$`)
	pkgFailRE  = regexp.MustCompile(`(?m)^FAIL\s+\S+`)
	timeoutMsg = "panic: test timed out"
)

// judge reads the outcome of go test from its output and error.
func judge(out []byte, err error) (verdict, error) {
	if err == nil {
		return verdict{outcome: outcomeSurvived}, nil
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		return verdict{}, fmt.Errorf("go test: %w", err)
	}
	text := string(out)
	switch {
	case strings.Contains(text, "[build failed]"):
		return verdict{outcomeNotCompiled, compileRE.FindString(text)}, nil
	case failRE.MatchString(text):
		return verdict{outcomeKilled, failedTests(text)}, nil
	case strings.Contains(text, timeoutMsg):
		return verdict{outcomeKilled, "the test timeout"}, nil
	case pkgFailRE.MatchString(text):
		// A panic outside any test, say.
		return verdict{outcomeKilled, "the test binary: " + firstLine(text)}, nil
	}
	return verdict{}, fmt.Errorf("go test failed before testing: %w\n%s", err, text)
}

// failedTests names the failing tests of a go test output, the most specific first found: a
// subtest rather than its parent.
func failedTests(text string) string {
	var names []string
	for _, m := range failRE.FindAllStringSubmatch(text, -1) {
		names = append(names, m[1])
	}
	var leaves []string
	for _, n := range names {
		if !slices.ContainsFunc(names, func(o string) bool { return strings.HasPrefix(o, n+"/") }) {
			leaves = append(leaves, n)
		}
	}
	const shown = 3
	if len(leaves) > shown {
		return fmt.Sprintf("%s and %d more", strings.Join(leaves[:shown], ", "), len(leaves)-shown)
	}
	return strings.Join(leaves, ", ")
}

func firstLine(text string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(text), "\n")
	return line
}
