package e2e

import (
	"context"
	"database/sql"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/shoal-db/shoal/dns/srv"
	"github.com/shoal-db/shoal/mysqlctl/gtid"
	"github.com/shoal-db/shoal/test/harness"
)

// A client that finds the primary only through DNS SRV (dns/srv) keeps writing across a host
// crash: the connection to the dead primary fails, the next one goes to the new primary.
func TestSRVClientAcrossFailover(t *testing.T) {
	harness.EachFlavor(t, func(t *testing.T, flavor gtid.Flavor) {
		c := Start(t, shoalBinary, flavor, 3)
		p := c.WaitPrimary(-1, 60*time.Second)
		c.WaitReplicating(p)
		survivor := (p + 1) % 3
		ask := c.Servers[survivor].Host() // a survivor's DNS server
		// Its gossip view of the primary may trail the primary's own by a tick.
		waitDNS(t, c, survivor, c.Name(p))
		srv.Register(&net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, net.JoinHostPort(ask, strconv.Itoa(dnsPort)))
		}})
		db, err := sql.Open("mysql", harness.AppUser+":"+harness.AppPassword+"@srv(_mysql._tcp.primary.e2e.shoal)/app?timeout=1s&readTimeout=3s")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		db.SetMaxOpenConns(1)
		if _, err := db.Exec("CREATE TABLE srv_client (id INT PRIMARY KEY)"); err != nil {
			t.Fatal(err)
		}
		failed, id := 0, 0
		write := func() bool {
			id++
			_, err := db.Exec("INSERT INTO srv_client VALUES (?)", id)
			if err != nil {
				failed++
			}
			return err == nil
		}
		for range 20 {
			if !write() {
				t.Fatal("write failed before the fault")
			}
		}
		c.KillAgent(p)
		if err := c.Servers[p].Kill(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(60 * time.Second)
		for ok := 0; ok < 20; {
			if write() {
				ok++
			} else {
				time.Sleep(50 * time.Millisecond)
			}
			if time.Now().After(deadline) {
				t.Fatalf("no writes through SRV within 60s of the crash (%d failed)", failed)
			}
		}
		t.Logf("%s: %d writes failed while the primary was replaced, then writes went on through SRV", flavor, failed)
	})
}
