package mysqlctl

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/shoal-db/shoal/mysqlctl/gtid"
	"github.com/shoal-db/shoal/mysqlctl/state"
)

// Config says how to reach one server. The timeouts bound every network step, so a hung or frozen
// server (SIGSTOP, a dropped link) can never stall the caller longer than ReadTimeout.
type Config struct {
	Addr     string // host:port, or the path of a Unix socket (starts with "/")
	User     string
	Password string
	// ConnectTimeout bounds the TCP connect and handshake (default 1s).
	ConnectTimeout time.Duration
	// ReadTimeout bounds every read from the server (default 30s). Waits such as WaitApplied are
	// cut to stay below it.
	ReadTimeout time.Duration
	// WriteTimeout bounds every write to the server (default 5s).
	WriteTimeout time.Duration
}

func (c Config) withDefaults() Config {
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = time.Second
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = 30 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 5 * time.Second
	}
	return c
}

// Server drives one MySQL or MariaDB server. It is safe for concurrent use.
type Server struct {
	addr    string
	db      *sql.DB
	flavor  gtid.Flavor
	version state.Version
	dialect dialect
	// maxWait is the longest server-side wait that still returns before the driver's read timeout.
	maxWait time.Duration
}

// Open connects to the server, detects its flavor and version, and refuses versions shoal does
// not support. The caller closes the Server.
func Open(ctx context.Context, cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	mc := mysql.NewConfig()
	mc.Net = "tcp"
	if strings.HasPrefix(cfg.Addr, "/") {
		// An agent beside its server talks over the socket: no network fault can cut that link.
		mc.Net = "unix"
	}
	mc.Addr = cfg.Addr
	mc.User = cfg.User
	mc.Passwd = cfg.Password
	mc.Timeout = cfg.ConnectTimeout
	mc.ReadTimeout = cfg.ReadTimeout
	mc.WriteTimeout = cfg.WriteTimeout
	// Client-side interpolation: replication and account statements cannot be prepared, and it
	// saves a round trip per statement on the failover path.
	mc.InterpolateParams = true
	// Status sends its reads as one multi-statement query. Every statement is shoal's own and
	// values go through the driver's escaping, so no outside text can add a statement.
	mc.MultiStatements = true
	mc.AllowNativePasswords = true
	connector, err := mysql.NewConnector(mc)
	if err != nil {
		return nil, fmt.Errorf("mysql %s: configure driver: %w", cfg.Addr, err)
	}
	db := sql.OpenDB(connector)
	// A control plane needs few connections; keeping them bounded keeps fencing's kill list short.
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(2)
	db.SetConnMaxIdleTime(time.Minute)

	var versionText string
	if err := db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&versionText); err != nil {
		db.Close()
		return nil, fmt.Errorf("mysql %s: read version: %w", cfg.Addr, err)
	}
	flavor, version, err := state.ParseVersion(versionText)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("mysql %s: %w", cfg.Addr, err)
	}
	return &Server{
		addr:    cfg.Addr,
		db:      db,
		flavor:  flavor,
		version: version,
		dialect: dialectFor(flavor),
		maxWait: cfg.ReadTimeout - time.Second,
	}, nil
}

// Close releases the connection pool.
func (s *Server) Close() error { return s.db.Close() }

// Addr is the host:port the Server talks to.
func (s *Server) Addr() string { return s.addr }

// Flavor is the server family detected at Open.
func (s *Server) Flavor() gtid.Flavor { return s.flavor }

// Version is the server version detected at Open.
func (s *Server) Version() state.Version { return s.version }

// DB exposes the pool for callers that run their own queries (tests, the backup agent).
func (s *Server) DB() *sql.DB { return s.db }

func (s *Server) errorf(step string, err error) error {
	return fmt.Errorf("mysql %s: %s: %w", s.addr, step, err)
}

func (s *Server) exec(ctx context.Context, step, query string, args ...any) error {
	if _, err := s.db.ExecContext(ctx, query, args...); err != nil {
		return s.errorf(step, err)
	}
	return nil
}

// waitSeconds turns the context deadline into a server-side wait timeout that returns before the
// driver's read timeout fires, so a wait ends with a clean "timed out" instead of a dead connection.
func (s *Server) waitSeconds(ctx context.Context) float64 {
	wait := s.maxWait
	if deadline, ok := ctx.Deadline(); ok {
		if left := time.Until(deadline); left < wait {
			wait = left
		}
	}
	if wait < 10*time.Millisecond {
		wait = 10 * time.Millisecond
	}
	return wait.Seconds()
}

// serverErrorNumber returns the MySQL error number of err, or 0.
func serverErrorNumber(err error) uint16 {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}
