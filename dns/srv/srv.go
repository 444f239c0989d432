// Package srv lets go-sql-driver/mysql users reach a shoal cluster through its DNS SRV records:
//
//	srv.Register(nil) // once; nil uses the system resolver
//	db, _ := sql.Open("mysql", "app:pw@srv(_mysql._tcp.primary.orders.shoal)/app")
//
// Every new connection resolves the name again, so after a failover the pool's next connection
// goes to the new primary: only the connections to the failed server are lost.
package srv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/go-sql-driver/mysql"
)

// Network is the DSN network name Register installs: user:pw@srv(NAME)/db.
const Network = "srv"

// Register installs the "srv" network in go-sql-driver/mysql, resolving with r (nil: the
// system resolver).
func Register(r *net.Resolver) {
	mysql.RegisterDialContext(Network, func(ctx context.Context, name string) (net.Conn, error) {
		return Dial(ctx, r, name)
	})
}

// Dial resolves the SRV name and connects to the first target that answers, in RFC 2782 order:
// lowest priority first, weighted random within a priority (as net.Resolver.LookupSRV sorts).
func Dial(ctx context.Context, r *net.Resolver, name string) (net.Conn, error) {
	if r == nil {
		r = net.DefaultResolver
	}
	_, targets, err := r.LookupSRV(ctx, "", "", name)
	if err != nil {
		return nil, fmt.Errorf("srv: look up %s: %w", name, err)
	}
	if len(targets) == 0 {
		return nil, fmt.Errorf("srv: %s has no targets", name)
	}
	dialer := &net.Dialer{Resolver: r}
	var errs []error
	for _, t := range targets {
		addr := net.JoinHostPort(t.Target, strconv.Itoa(int(t.Port)))
		conn, err := dialer.DialContext(ctx, "tcp", addr)
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("srv: no target of %s answered: %w", name, errors.Join(errs...))
}
