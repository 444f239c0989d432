package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/shoal-db/shoal/test/harness"
)

// BigTransactionBytes is about what one BigTransaction writes to the binlog.
const BigTransactionBytes = 150 * 150 * 3000

// BigTransaction starts one transaction of about BigTransactionBytes on member i's server (which
// must be the writable primary), in database bulk; the channel reports how it ended. It runs as
// root with no read timeout, so only the server ends it.
func (c *Cluster) BigTransaction(ctx context.Context, i int) <-chan error {
	c.t.Helper()
	return c.BigTransactionTimes(ctx, i, 1)
}

// BigTransactionTimes is BigTransaction writing n times as much.
func (c *Cluster) BigTransactionTimes(ctx context.Context, i, n int) <-chan error {
	c.t.Helper()
	cfg := c.Servers[i].DSN(harness.RootUser, harness.RootPassword)
	db, err := sql.Open("mysql", cfg+"&readTimeout=0")
	if err != nil {
		c.t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	seq := make([]string, 150)
	for n := range seq {
		seq[n] = fmt.Sprintf("(%d)", n+1)
	}
	for _, q := range []string{
		"CREATE DATABASE IF NOT EXISTS bulk",
		"CREATE TABLE IF NOT EXISTS bulk.seq (id INT PRIMARY KEY)",
		"CREATE TABLE IF NOT EXISTS bulk.big (id BIGINT AUTO_INCREMENT PRIMARY KEY, pad LONGBLOB)",
		"INSERT IGNORE INTO bulk.seq VALUES " + strings.Join(seq, ","),
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			db.Close()
			c.t.Fatalf("%s on %s: %v", q, c.Name(i), err)
		}
	}
	done := make(chan error, 1)
	go func() {
		defer db.Close()
		_, err := db.ExecContext(ctx, fmt.Sprintf("INSERT INTO bulk.big (pad) SELECT REPEAT('x', %d) FROM bulk.seq a, bulk.seq b", 3000*n))
		done <- err
	}()
	return done
}

// WaitBinlogGrowth waits until member i's newest binlog file is grown bytes past its size at the
// call, which for a big transaction means its commit is writing it and senders are sending it.
// It returns false when done reports first or a minute passes.
func (c *Cluster) WaitBinlogGrowth(i int, grown int64, done <-chan error) bool {
	c.t.Helper()
	size := func() int64 {
		files, _ := filepath.Glob(filepath.Join(c.Servers[i].Dir(), "data", "binlog.[0-9]*"))
		if len(files) == 0 {
			c.t.Fatalf("%s: no binlog file", c.Name(i))
		}
		fi, err := os.Stat(slices.Max(files))
		if err != nil {
			c.t.Fatal(err)
		}
		return fi.Size()
	}
	target := size() + grown
	deadline := time.Now().Add(time.Minute)
	for size() < target {
		select {
		case <-done:
			return false
		default:
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
	return true
}
