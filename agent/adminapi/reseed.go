package adminapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/shoal-db/shoal/mysqlctl/gtid"
)

// RebuildRequest asks the leader to re-seed Member from a donor it picks (`shoal rebuild`).
type RebuildRequest struct {
	Member string `json:"member"`
}

// Rebuild is the leader's answer: the re-seed it asked Member's agent to start.
type Rebuild struct {
	Member string `json:"member"`
	Donor  string `json:"donor"`
}

// ReseedRequest is the leader asking a member's agent to re-seed its server from Donor, or
// from the newest backup in the store when FromBackup is set (Donor is then empty).
type ReseedRequest struct {
	Donor      string `json:"donor"`
	FromBackup bool   `json:"from_backup,omitempty"`
}

// BackupTrailer is the HTTP trailer a donor sets once its backup stream ended well: a stream
// cut short (the donor's mariadb-backup failed, the connection dropped) lacks it and is refused.
// A relay log stream ends with it too.
const BackupTrailer = "Shoal-Backup"

// BackupComplete is BackupTrailer's value after a complete stream.
const BackupComplete = "complete"

// ErrIncompleteBackup: the donor's stream ended without BackupTrailer saying it is complete.
var ErrIncompleteBackup = errors.New("backup stream incomplete")

// RequestRebuild asks the cluster to re-seed member, following the answer to the leader.
func (c Client) RequestRebuild(ctx context.Context, addr, member string) (Rebuild, error) {
	var out Rebuild
	err := c.callLeader(ctx, addr, "/v1/rebuild", RebuildRequest{Member: member}, &out)
	return out, err
}

// Reseed asks the agent at addr to re-seed its server from donor; it returns once the agent has
// started (the copy goes on in the background).
func (c Client) Reseed(ctx context.Context, addr, donor string) error {
	return c.call(ctx, http.MethodPost, addr, "/v1/reseed", ReseedRequest{Donor: donor}, nil)
}

// ReseedFromBackup asks the agent at addr to re-seed its server from the newest backup; it
// returns once the agent has started.
func (c Client) ReseedFromBackup(ctx context.Context, addr string) error {
	return c.call(ctx, http.MethodPost, addr, "/v1/reseed", ReseedRequest{FromBackup: true}, nil)
}

// BackupStream opens the donor agent's backup stream (MariaDB: mariadb-backup in mbstream
// format). Reading the body to its end fails with ErrIncompleteBackup unless the donor said the
// stream is complete. The caller closes it. The client must have no timeout: a copy takes long.
func (c Client) BackupStream(ctx context.Context, addr string) (io.ReadCloser, error) {
	return c.stream(ctx, addr, "/v1/reseed/stream", "backup stream")
}

// Logs opens the stream of the transactions the agent at addr has in one of its server's logs
// ("binlog" or "relay") and after lacks, within only unless it is empty, as SQL that replays
// them (a failover's recovery; see LogsPath). Like BackupStream's, its end without the agent's
// completion trailer is an error.
func (c Client) Logs(ctx context.Context, addr, log string, after, only gtid.Set) (io.ReadCloser, error) {
	q := url.Values{"log": {log}, "after": {setParam(after)}, "only": {setParam(only)}}
	return c.stream(ctx, addr, LogsPath+"?"+q.Encode(), log+" stream")
}

// setParam is a GTID set as the agent parses it back: a MariaDB set by its GTID position (the
// last sequence number per domain), which is all the binlog tool takes; a MySQL set whole.
func setParam(s gtid.Set) string {
	if s.Flavor() == gtid.MariaDB {
		return s.MariaDBPosition()
	}
	return s.String()
}

// LogsPath is the endpoint of Logs; its parameters are "log", and "after" and "only", GTID sets
// as the server prints them.
const LogsPath = "/v1/logs"

// stream GETs path from the agent at addr, a stream that ends with BackupTrailer.
func (c Client) stream(ctx context.Context, addr, path, what string) (io.ReadCloser, error) {
	scheme := "http://"
	if c.HTTPS {
		scheme = "https://"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+addr+path, nil)
	if err != nil {
		return nil, fmt.Errorf("%s from %s: %w", what, addr, err)
	}
	client := c.HTTP
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s from %s: %w", what, addr, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return nil, fmt.Errorf("%s from %s: %w: %s: %s", what, addr, ErrAPI, resp.Status, strings.TrimSpace(string(b)))
	}
	return &checkedStream{resp: resp, addr: addr, what: what}, nil
}

// checkedStream turns the end of a stream the donor did not mark complete into an error.
type checkedStream struct {
	resp       *http.Response
	addr, what string
}

func (s *checkedStream) Read(p []byte) (int, error) {
	n, err := s.resp.Body.Read(p)
	if errors.Is(err, io.EOF) && s.resp.Trailer.Get(BackupTrailer) != BackupComplete {
		return n, fmt.Errorf("%s from %s: %w (its agent's log says why)", s.what, s.addr, ErrIncompleteBackup)
	}
	return n, err
}

func (s *checkedStream) Close() error { return s.resp.Body.Close() }
