package harness

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/shoal-db/shoal/mysqlctl/gtid"
)

// Flavors are the server flavors integration tests run against: both, unless SHOAL_FLAVORS
// (comma-separated, e.g. "mariadb") narrows them for a quick local run.
func Flavors() []gtid.Flavor {
	all := []gtid.Flavor{gtid.MariaDB, gtid.MySQL}
	env := os.Getenv("SHOAL_FLAVORS")
	if env == "" {
		return all
	}
	var out []gtid.Flavor
	for _, f := range all {
		for _, want := range strings.Split(env, ",") {
			if strings.TrimSpace(want) == string(f) {
				out = append(out, f)
			}
		}
	}
	return out
}

// EachFlavor runs f as a subtest per flavor, named after it ("mariadb", "mysql").
func EachFlavor(t *testing.T, f func(t *testing.T, flavor gtid.Flavor)) {
	t.Helper()
	flavors := Flavors()
	if len(flavors) == 0 {
		t.Fatalf("SHOAL_FLAVORS=%q names no known flavor (mariadb, mysql)", os.Getenv("SHOAL_FLAVORS"))
	}
	for _, flavor := range flavors {
		t.Run(string(flavor), func(t *testing.T) { f(t, flavor) })
	}
}

// StartN starts n servers db1..dbN (server ids 1..N, each on its own allocated loopback address)
// in parallel, and removes them when the test ends, also after a failure. A server that cannot
// start, including one that is not installed, fails the test with the reason: never a skip.
func StartN(t testing.TB, flavor gtid.Flavor, n int, tweak func(i int, c *ServerConfig)) []*Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // a cold template build included
	defer cancel()
	servers, err := StartAll(ctx, ClusterConfigs(flavor, n, tweak))
	if err != nil {
		t.Fatalf("start %d %s servers: %v", n, flavor, err)
	}
	t.Cleanup(func() {
		for _, s := range servers {
			if err := s.Remove(); err != nil {
				t.Errorf("remove server %s: %v", s.Config.Name, err)
			}
		}
	})
	return servers
}
