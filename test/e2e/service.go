package e2e

import (
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/shoal-db/shoal/test/harness"
)

// startServiceManager stands in for systemd: an agent re-seeding its server stops and starts its
// mysqld through it (mysql.stop_command and mysql.start_command run curl against its Unix
// socket), and it has the harness, which owns the server processes, do so.
func (c *Cluster) startServiceManager() {
	c.t.Helper()
	// Short: a Unix socket path has at most 107 bytes, and test names make long temp dirs.
	dir, err := os.MkdirTemp("", "shoal-svc-")
	if err != nil {
		c.t.Fatal(err)
	}
	c.serviceSocket = filepath.Join(dir, "svc.sock")
	ln, err := net.Listen("unix", c.serviceSocket)
	if err != nil {
		c.t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /{member}/{action}", func(w http.ResponseWriter, r *http.Request) {
		i := c.index(r.PathValue("member"))
		if i < 0 {
			http.Error(w, "no such member", http.StatusNotFound)
			return
		}
		svc := harness.Service{S: c.Servers[i]}
		var err error
		switch r.PathValue("action") {
		case "stop":
			err = svc.Stop(r.Context())
		case "start":
			if err = svc.Start(r.Context()); err == nil {
				err = c.moveToHost(i, c.Servers[i].PID())
			}
		default:
			err = errors.New("want stop or start")
		}
		if err != nil {
			// curl --fail-with-body shows it in the agent's error.
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	c.t.Cleanup(func() {
		srv.Close()
		os.RemoveAll(dir)
	})
}

// serviceArgs are member i's agent flags that reach the service manager.
func (c *Cluster) serviceArgs(i int) []string {
	curl := []string{"curl", "-sS", "--fail-with-body", "--max-time", "300", "--unix-socket", c.serviceSocket, "-X", "POST", "http://svc/" + c.Name(i) + "/"}
	cmd := func(action string) string { return strings.Join(curl, ",") + action }
	return []string{"--mysql.stop_command", cmd("stop"), "--mysql.start_command", cmd("start")}
}
