package main

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"go/types"
	"os/exec"
	"strings"
	"testing"
)

const tiny = `package p

type decision struct {
	a, b bool
	n    int
}

func decide(x int) decision {
	var d decision
	y := x * 2
	z := x - 1
	switch {
	case x > 1:
		d.a = true
		d.n++
	default:
		d.n = y
	}
	if x > 0 {
		d.b = true
	} else if d.n = 3; x < -5 {
		return d
	} else {
		d.n = z
	}
	return d
}
`

func TestEnumerate(t *testing.T) {
	muts, err := enumerate("tiny.go", []byte(tiny))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range muts {
		got = append(got, fmt.Sprintf("%d: %s", m.line, m.desc))
	}
	want := []string{
		`13: delete case body "x > 1"`,
		`14: delete d.a = true`,
		`15: delete d.n++`,
		`16: delete default body (with _ = y)`,
		`19: delete if body "x > 0"`,
		`21: delete else of "x > 0" (with _ = z)`,
		`21: delete d.n = 3`,
		`21: delete if body "x < -5"`,
		`23: delete else of "x < -5" (with _ = z)`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("mutations:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// Each mutant is the original minus exactly its deletion, gofmt'ed, and type-checks: no
	// mutation is lost to an unused variable.
	wantSrc := map[string]string{
		`delete d.a = true`: `
	case x > 1:
		d.n++
	default:`,
		`delete default body (with _ = y)`: `
	default:
		_ = y
	}`,
		`delete else of "x > 0" (with _ = z)`: `
	if x > 0 {
		_ = z
		d.b = true
	}
	return d`,
		`delete d.n = 3`: `
	} else if x < -5 {`,
		`delete else of "x < -5" (with _ = z)`: `
	} else if d.n = 3; x < -5 {
		_ = z
		return d
	}
	return d`,
	}
	for _, m := range muts {
		src := string(m.src)
		if frag, ok := wantSrc[m.desc]; ok && !strings.Contains(src, frag) {
			t.Errorf("%s: mutant lacks %q:\n%s", m.desc, frag, src)
		}
		if removed := len(tiny) - len(src); removed <= 0 {
			t.Errorf("%s: mutant is not shorter than the original:\n%s", m.desc, src)
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, "tiny.go", src, 0)
		if err != nil {
			t.Fatalf("%s: %v", m.desc, err)
		}
		if _, err := (&types.Config{}).Check("p", fset, []*ast.File{f}, nil); err != nil {
			t.Errorf("%s: mutant does not compile: %v\n%s", m.desc, err, src)
		}
	}
}

func TestJudge(t *testing.T) {
	exitErr := exec.Command("false").Run()
	tests := []struct {
		name string
		out  string
		err  error
		want string
	}{
		{"pass", "ok  \tx/agent/ha\t0.3s\n", nil, "SURVIVED"},
		{"subtests", "--- FAIL: TestDecide (0.01s)\n    --- FAIL: TestDecide/a (0.00s)\n        x_test.go:9: bad\n" +
			"    --- FAIL: TestDecide/b (0.00s)\n--- FAIL: TestOther (0.00s)\nFAIL\nFAIL\tx/agent/ha\t0.3s\n",
			exitErr, "KILLED by TestDecide/a, TestDecide/b, TestOther"},
		{"many", strings.Repeat("--- FAIL: TestA (0.00s)\n--- FAIL: TestB (0.00s)\n", 1) +
			"--- FAIL: TestC (0.00s)\n--- FAIL: TestD (0.00s)\n", exitErr, "KILLED by TestA, TestB, TestC and 1 more"},
		{"build", "# x/agent/ha\nagent/ha/decide.go:12:2: declared and not used: y\nFAIL\tx/agent/ha [build failed]\n",
			exitErr, "NOT COMPILED (agent/ha/decide.go:12:2: declared and not used: y)"},
		{"timeout", "panic: test timed out after 1m0s\n", exitErr, "KILLED by the test timeout"},
	}
	for _, tt := range tests {
		v, err := judge([]byte(tt.out), tt.err)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
		} else if v.String() != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, v, tt.want)
		}
	}
	if _, err := judge([]byte("go: cannot find main module\n"), exitErr); err == nil {
		t.Error("a go command that did not test was judged")
	}
	if _, err := judge(nil, errors.New("exec: \"go\": not found")); err == nil {
		t.Error("a go command that did not run was judged")
	}
}
