// Package purity keeps the HA decision pure by construction. It lives outside agent/ha so that
// agent/ha's own files, its tests included, need nothing that runs commands or reads files.
package purity

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const decision = "github.com/shoal-db/shoal/agent/ha"

// valuePackages are the standard packages that only compute on values.
const valuePackages = "bytes cmp encoding/json errors fmt maps math math/bits slices sort strconv strings time unicode unicode/utf8"

// TestDecisionImportsNoIO: no package the decision builds on may reach a driver, the network,
// the file system or a process. The standard library's time imports syscall itself (time zones:
// `go list -f '{{.Imports}}' time`), so every package with a time.Time has syscall among its
// dependencies; what this test holds is that nothing of shoal's imports more than value
// packages, agent/ha's tests included, and nothing from outside the standard library is used.
func TestDecisionImportsNoIO(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-json", decision).Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	allowed := map[string]bool{}
	for _, p := range strings.Fields(valuePackages) {
		allowed[p] = true
	}
	forbidden := strings.Fields("net crypto/tls database/sql os/exec net/http github.com/go-sql-driver/mysql")
	const module = "github.com/shoal-db/shoal/"
	dec := json.NewDecoder(strings.NewReader(string(out)))
	seen := 0
	for {
		var pkg struct {
			ImportPath string
			Standard   bool
			Imports    []string
		}
		if err := dec.Decode(&pkg); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		seen++
		for _, f := range forbidden {
			if pkg.ImportPath == f {
				t.Errorf("agent/ha depends on %s", f)
			}
		}
		switch {
		case pkg.Standard:
		case !strings.HasPrefix(pkg.ImportPath, module):
			t.Errorf("agent/ha depends on %s, outside the standard library and shoal", pkg.ImportPath)
		default:
			for _, imp := range pkg.Imports {
				if !allowed[imp] && !strings.HasPrefix(imp, module) {
					t.Errorf("%s imports %s; the decision's packages use value types only", pkg.ImportPath, imp)
				}
			}
		}
	}
	if seen < 5 {
		t.Fatalf("go list reported only %d packages", seen)
	}
}

// TestDecisionTestsImportNoIO: agent/ha's tests read no file and start no process either (reason.go
// is embedded where a test reads it), so they run anywhere the decision does.
func TestDecisionTestsImportNoIO(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{join .TestImports " "}}`, decision).Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	allowed := map[string]bool{}
	for _, p := range strings.Fields(valuePackages + " embed math/rand/v2 reflect regexp sync testing") {
		allowed[p] = true
	}
	imports := strings.Fields(string(out))
	if len(imports) == 0 {
		t.Fatal("go list reported no test imports of agent/ha")
	}
	for _, imp := range imports {
		if !allowed[imp] && !strings.HasPrefix(imp, "github.com/shoal-db/shoal/") {
			t.Errorf("agent/ha's tests import %s", imp)
		}
	}
}
