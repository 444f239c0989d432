// Command rig runs real MySQL/MariaDB servers for the demo and for people trying shoal by hand:
// each on its own loopback address, outliving rig itself, recorded in a state file.
//
//	rig up --flavor mariadb --n 3 --hosts 127.0.0.11,127.0.0.12,127.0.0.13 --state /tmp/x/rig.json
//	rig kill --state /tmp/x/rig.json db1
//	rig restart --state /tmp/x/rig.json db1
//	rig down --state /tmp/x/rig.json
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/shoal-db/shoal/mysqlctl/gtid"
	"github.com/shoal-db/shoal/test/harness"
)

// serverState is one server in the state file.
type serverState struct {
	Name     string      `json:"name"`
	Flavor   gtid.Flavor `json:"flavor"`
	Host     string      `json:"host"`
	Port     int         `json:"port"`
	ServerID uint32      `json:"server_id"`
	PID      int         `json:"pid"`
	Dir      string      `json:"dir"`
	RootDSN  string      `json:"root_dsn"`
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "rig:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return errors.New("usage: rig up|down|kill|restart --state FILE [...]")
	}
	fs := flag.NewFlagSet("rig "+args[0], flag.ContinueOnError)
	state := fs.String("state", "", "state file (required)")
	flavor := fs.String("flavor", "mariadb", "up: mariadb or mysql")
	n := fs.Int("n", 3, "up: number of servers")
	port := fs.Int("port", 3306, "up: port every server listens on")
	hosts := fs.String("hosts", "", "up: comma-separated loopback addresses (default: allocated)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *state == "" {
		return errors.New("--state is required")
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	switch args[0] {
	case "up":
		return up(ctx, *state, gtid.Flavor(*flavor), *n, *port, *hosts, log)
	case "down":
		return down(*state)
	case "kill", "restart":
		if fs.NArg() != 1 {
			return fmt.Errorf("%s needs one server name", args[0])
		}
		return one(ctx, *state, args[0], fs.Arg(0))
	}
	return fmt.Errorf("unknown command %q", args[0])
}

func up(ctx context.Context, state string, flavor gtid.Flavor, n, port int, hosts string, log *slog.Logger) error {
	if _, err := os.Stat(state); err == nil {
		return fmt.Errorf("%s exists: run rig down first", state)
	}
	var hostList []string
	if hosts != "" {
		hostList = strings.Split(hosts, ",")
		if len(hostList) != n {
			return fmt.Errorf("--hosts names %d addresses for %d servers", len(hostList), n)
		}
	}
	if err := os.MkdirAll(filepath.Dir(state), 0o755); err != nil {
		return err
	}
	// The state file exists from the start, so the harness never reaps these servers as leftovers.
	if err := os.WriteFile(state, []byte("[]\n"), 0o644); err != nil {
		return err
	}
	cfgs := harness.ClusterConfigs(flavor, n, func(i int, c *harness.ServerConfig) {
		c.Port, c.SuperReadOnly, c.StateFile, c.Logger = port, true, state, log
		if hostList != nil {
			c.Host = strings.TrimSpace(hostList[i])
		}
	})
	servers, err := harness.StartAll(ctx, cfgs)
	if err != nil {
		os.Remove(state)
		return err
	}
	var st []serverState
	for _, s := range servers {
		st = append(st, stateOf(s))
		fmt.Printf("%s  %-8s %s  pid %d\n", s.Config.Name, flavor, s.Addr(), s.PID())
	}
	return save(state, st)
}

func stateOf(s *harness.Server) serverState {
	c := s.Config
	return serverState{Name: c.Name, Flavor: c.Flavor, Host: c.Host, Port: c.Port, ServerID: c.ServerID,
		PID: s.PID(), Dir: s.Dir(), RootDSN: s.DSN(harness.RootUser, harness.RootPassword)}
}

func load(state string) ([]serverState, error) {
	b, err := os.ReadFile(state)
	if err != nil {
		return nil, err
	}
	var st []serverState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("read %s: %w", state, err)
	}
	return st, nil
}

func save(state string, st []serverState) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(state, append(b, '\n'), 0o644)
}

func attach(s serverState) (*harness.Server, error) {
	return harness.Attach(harness.ServerConfig{Flavor: s.Flavor, Name: s.Name, Host: s.Host, Port: s.Port,
		ServerID: s.ServerID, SuperReadOnly: true}, s.Dir, s.PID)
}

func down(state string) error {
	st, err := load(state)
	if err != nil {
		return err
	}
	var errs []error
	for _, s := range st {
		srv, err := attach(s)
		if err == nil {
			err = srv.Remove()
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return os.Remove(state)
}

func one(ctx context.Context, state, verb, name string) error {
	st, err := load(state)
	if err != nil {
		return err
	}
	for i, s := range st {
		if s.Name != name {
			continue
		}
		srv, err := attach(s)
		if err != nil {
			return err
		}
		if verb == "kill" {
			err = srv.Kill()
		} else {
			err = srv.Restart(ctx)
		}
		if err != nil {
			return err
		}
		st[i] = stateOf(srv)
		return save(state, st)
	}
	return fmt.Errorf("no server %q in %s", name, state)
}
