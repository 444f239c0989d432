package ha

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

// TestDecisionImportsNoIO keeps the decision pure by construction, not only by review: no
// package it builds on may reach a driver, the network, the file system or a process. The
// standard library's own time and fmt pull in os and syscall (time zones, printing to files);
// what matters is that nothing of shoal's, and nothing from outside the standard library, uses
// more than plain values.
func TestDecisionImportsNoIO(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-json", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	allowed := map[string]bool{}
	for _, p := range strings.Fields("bytes cmp encoding/json errors fmt maps math math/bits slices sort strconv strings time unicode unicode/utf8") {
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
