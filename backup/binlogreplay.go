package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/shoal-db/shoal/mysqlctl"
	"github.com/shoal-db/shoal/mysqlctl/gtid"
)

// Replay is the second half of a point-in-time restore: the archived binlog files that take a
// restored backup to a target, downloaded and checked, each cut to the byte range of the
// transactions to apply. PrepareReplay checks everything before anything is applied, so a
// missing or corrupt file, or a gap, fails the restore while the data dir is still untouched.
type Replay struct {
	Flavor gtid.Flavor
	Target BinlogTarget
	Steps  []PreparedStep
	// Transactions is how many the replay applies; Last is the last one (zero when none).
	Transactions int
	Last         BinlogTxn
	// Abandoned are archived files of a history the cluster did not go on with (see PlanReplay):
	// not replayed.
	Abandoned []*BinlogManifest
}

// PreparedStep is one downloaded file and the byte range of it to replay.
type PreparedStep struct {
	File *BinlogManifest
	// Name is the file's name in the stage dir.
	Name       string
	Start, End int64
	Txns       int
}

// ListBinlogs returns the cluster's archived binlog files (manifests that read and check).
func (c Catalog) ListBinlogs(ctx context.Context) ([]*BinlogManifest, error) {
	return readBinlogIndex(ctx, c.Store, c.Cluster, nil)
}

// PrepareReplay plans the replay from the backup m to target and downloads the files it needs
// into stageDir, each checked against its manifest's size and sha256 and read again for its
// transactions.
func PrepareReplay(ctx context.Context, c Catalog, m *Manifest, target BinlogTarget, stageDir string) (*Replay, error) {
	fail := func(err error) (*Replay, error) {
		return nil, fmt.Errorf("point-in-time restore of backup %s to %s: %w", m.ID, target, err)
	}
	index, err := c.ListBinlogs(ctx)
	if err != nil {
		return fail(err)
	}
	from, err := gtid.Parse(m.Flavor, m.GTIDExecuted)
	if err != nil {
		return fail(fmt.Errorf("the backup's GTID position: %w", err))
	}
	steps, abandoned, err := PlanReplay(m.Flavor, from, index, target)
	if err != nil {
		return fail(err)
	}
	r := &Replay{Flavor: m.Flavor, Target: target, Abandoned: abandoned}
	for i, s := range steps {
		name := fmt.Sprintf("%03d-%s-%s", i, s.File.Member, s.File.File)
		path := filepath.Join(stageDir, name)
		if err := download(ctx, c.Store, s.File, path); err != nil {
			return fail(err)
		}
		var txns []BinlogTxn
		scan, err := scanPath(path, m.Flavor, func(t BinlogTxn) error { txns = append(txns, t); return nil })
		if err != nil {
			return fail(fmt.Errorf("%s of %s: %w", s.File.File, s.File.Member, err))
		}
		if scan.Before.String() != s.File.GTIDBefore || scan.After.String() != s.File.GTIDAfter {
			return fail(fmt.Errorf("%s of %s holds %s to %s, its manifest says %s to %s: %w", s.File.File, s.File.Member,
				scan.Before, scan.After, s.File.GTIDBefore, s.File.GTIDAfter, ErrCorrupt))
		}
		start, end, n, done, err := cutTxns(m.Flavor, s.Covered, target, txns)
		if err != nil {
			return fail(fmt.Errorf("%s of %s: %w", s.File.File, s.File.Member, err))
		}
		if n > 0 {
			r.Steps = append(r.Steps, PreparedStep{File: s.File, Name: name, Start: start, End: end, Txns: n})
			r.Transactions += n
			for _, t := range txns {
				if t.End == end {
					r.Last = t
				}
			}
		}
		if done {
			break
		}
	}
	return r, nil
}

func scanPath(path string, flavor gtid.Flavor, each func(BinlogTxn) error) (*BinlogScan, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ScanBinlog(f, flavor, each)
}

// download writes the archived file to path, failing with ErrMissing or ErrCorrupt when it is
// not there or not what its manifest says.
func download(ctx context.Context, store Store, m *BinlogManifest, path string) error {
	what := m.File + " of " + m.Member
	rc, err := store.Get(ctx, m.ObjectKey())
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("binlog %s: %w", what, ErrMissing)
	}
	if err != nil {
		return fmt.Errorf("binlog %s: %w", what, err)
	}
	defer rc.Close()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return fmt.Errorf("binlog %s: %w", what, err)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(rc, m.Size+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	switch {
	case err != nil:
		return fmt.Errorf("binlog %s: %w", what, err)
	case n != m.Size:
		return fmt.Errorf("binlog %s: %d bytes, its manifest says %d: %w", what, n, m.Size, ErrCorrupt)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != m.SHA256 {
		return fmt.Errorf("binlog %s: sha256 %s, its manifest says %s: %w", what, sum, m.SHA256, ErrCorrupt)
	}
	return nil
}

// ReplayTools are the programs a replay runs: the flavor's binlog tool (mysqlbinlog or
// mariadb-binlog) and command-line client (mysql or mariadb), each as a command line, e.g.
// with a chroot in front; the client's gets no options of its own, as its option file must come
// first. StageDir is the stage dir as they see it ("" when they see it where
// the agent does).
type ReplayTools struct {
	Binlog, Client []string
	StageDir       string
}

// Apply replays the prepared files, in order, into the server at conn (the one started on the
// restored data dir, reachable by no application): each file's byte range through the binlog
// tool into the client. The range starts at a transaction's GTID event and ends before the next
// one, so no transaction is cut in half (--stop-datetime could stop inside one).
func (r *Replay) Apply(ctx context.Context, tools ReplayTools, stageDir string, conn mysqlctl.Config, log *slog.Logger) error {
	if len(tools.Binlog) == 0 || len(tools.Client) == 0 {
		return errors.New("replay: the binlog tool and the client must be named")
	}
	toolDir := stageDir
	if tools.StageDir != "" {
		toolDir = tools.StageDir
	}
	// The password goes in a file, not on a command line other users can read.
	cnf := filepath.Join(stageDir, "client.cnf")
	if err := os.WriteFile(cnf, []byte(clientOptions(conn)), 0o600); err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	defer os.Remove(cnf)
	for _, s := range r.Steps {
		binlog := append(append([]string{}, tools.Binlog...),
			"--start-position="+strconv.FormatInt(s.Start, 10), "--stop-position="+strconv.FormatInt(s.End, 10),
			filepath.Join(toolDir, s.Name))
		client := append(append([]string{}, tools.Client...), "--defaults-extra-file="+filepath.Join(toolDir, "client.cnf"))
		if err := pipe(ctx, binlog, client); err != nil {
			return fmt.Errorf("replay %s of %s (bytes %d to %d): %w", s.File.File, s.File.Member, s.Start, s.End, err)
		}
		if log != nil {
			log.Info("binlog replayed", "file", s.File.File, "member", s.File.Member, "transactions", s.Txns)
		}
	}
	return nil
}

// clientOptions is an option file for the client reaching conn.
func clientOptions(conn mysqlctl.Config) string {
	var b strings.Builder
	b.WriteString("[client]\n")
	if strings.HasPrefix(conn.Addr, "/") {
		fmt.Fprintf(&b, "socket=%s\n", conn.Addr)
	} else if host, port, err := net.SplitHostPort(conn.Addr); err == nil {
		fmt.Fprintf(&b, "host=%s\nport=%s\nprotocol=TCP\n", host, port)
	} else {
		fmt.Fprintf(&b, "host=%s\nprotocol=TCP\n", conn.Addr)
	}
	fmt.Fprintf(&b, "user=%s\npassword=%s\n", conn.User, conn.Password)
	return b.String()
}

// pipe runs from | to, failing with either's stderr.
func pipe(ctx context.Context, from, to []string) error {
	src := exec.CommandContext(ctx, from[0], from[1:]...)
	dst := exec.CommandContext(ctx, to[0], to[1:]...)
	var srcErr, dstErr strings.Builder
	src.Stderr, dst.Stderr = &srcErr, &dstErr
	out, err := src.StdoutPipe()
	if err != nil {
		return err
	}
	dst.Stdin = out
	if err := src.Start(); err != nil {
		return fmt.Errorf("%s: %w", from[0], err)
	}
	if err := dst.Start(); err != nil {
		_ = src.Process.Kill()
		_ = src.Wait()
		return fmt.Errorf("%s: %w", to[0], err)
	}
	dErr := dst.Wait()
	if dErr != nil {
		_ = src.Process.Kill()
	}
	sErr := src.Wait()
	switch {
	case dErr != nil:
		return fmt.Errorf("%s: %w: %s", to[0], dErr, strings.TrimSpace(dstErr.String()))
	case sErr != nil:
		return fmt.Errorf("%s: %w: %s", from[0], sErr, strings.TrimSpace(srcErr.String()))
	}
	return nil
}

// BinlogPresence checks, without reading them, that the objects of files are in the store with
// the sizes their manifests say; each problem matches ErrMissing or ErrCorrupt.
func (c Catalog) BinlogPresence(ctx context.Context, files []*BinlogManifest) error {
	objs, err := c.Store.List(ctx, layout{c.Cluster}.binlogRoot())
	if err != nil {
		return fmt.Errorf("list the binlog archive: %w", err)
	}
	have := map[string]int64{}
	for _, o := range objs {
		have[o.Key] = o.Size
	}
	var errs []error
	for _, f := range files {
		size, ok := have[f.ObjectKey()]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("binlog %s of %s: %w", f.File, f.Member, ErrMissing))
		case size != f.Size:
			errs = append(errs, fmt.Errorf("binlog %s of %s: %d bytes, its manifest says %d: %w", f.File, f.Member, size, f.Size, ErrCorrupt))
		}
	}
	return errors.Join(errs...)
}
