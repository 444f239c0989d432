package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/shoal-db/shoal/mysqlctl"
	"github.com/shoal-db/shoal/mysqlctl/gtid"
	"github.com/shoal-db/shoal/reseed"
)

// Defaults for Taker.
const (
	// DefaultObjectSize keeps every object well inside what one multipart upload of 16 MiB parts
	// can hold (10,000 parts), and a failed download cheap to retry.
	DefaultObjectSize       = 8 << 30
	defaultProgressInterval = 30 * time.Second
)

// Taker takes backups of the local server. It keeps nothing between backups; run one at a time
// per server (ids have a second's resolution, and two copies at once only slow each other).
type Taker struct {
	Store   Store
	Cluster string
	// Member is this member's id (a DNS label); it is part of every backup id.
	Member string
	// Local is the agent's connection to its own server.
	Local mysqlctl.Config

	// MariaDB: TmpDir holds mariadb-backup's scratch files; BytesPerSecond caps its stream (0:
	// none); Nice is its niceness; Tools names the programs.
	TmpDir         string
	BytesPerSecond int64
	Nice           int
	Tools          reseed.Tools

	// MySQL: CloneDir is where the server writes its clone (CLONE LOCAL DATA DIRECTORY) before
	// it is streamed: an existing directory mysqld can write to, with room for a full copy of
	// the data. CloneDirLocal is the same directory as the agent sees it, when the server runs
	// in another mount namespace (a container, a chroot); "" means CloneDir.
	CloneDir, CloneDirLocal string

	// ObjectSize caps each stored object (0: DefaultObjectSize); it must stay within what the
	// store's part size allows in one multipart upload.
	ObjectSize int64
	// Level is the zstd level; 0 is zstd.SpeedFastest, which keeps up with a disk.
	Level zstd.EncoderLevel
	// ProgressInterval is how often progress is logged (0: every 30 s).
	ProgressInterval time.Duration
	Metrics          *Metrics
	Log              *slog.Logger
}

// Take backs the local server up: it streams a physical copy (mariadb-backup for MariaDB, a
// local clone for MySQL) through zstd into objects, then writes the manifest. When anything
// fails, what was uploaded is removed (best effort: what remains has no manifest and is listed
// as incomplete) and the error says which step failed.
func (t *Taker) Take(ctx context.Context) (*Manifest, error) { return t.TakeForJob(ctx, "") }

// TakeForJob is Take for the scheduled job job (record.BackupJob.ID), which the manifest names.
func (t *Taker) TakeForJob(ctx context.Context, job string) (m *Manifest, err error) {
	begin := time.Now()
	defer func() { t.Metrics.done("backup", begin, time.Now(), err) }()
	if err := t.Store.Check(ctx); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	srv, err := mysqlctl.Open(ctx, t.Local)
	if err != nil {
		return nil, fmt.Errorf("backup: open the local server: %w", err)
	}
	defer srv.Close()
	m = &Manifest{Format: manifestFormat, ID: newID(begin, t.Member), Cluster: t.Cluster, Member: t.Member, Job: job,
		Flavor: srv.Flavor(), Compression: "zstd", StartTime: begin.UTC()}
	if !ValidID(m.ID) {
		return nil, fmt.Errorf("backup: member %q cannot name a backup: want a DNS label", t.Member)
	}
	if err := srv.DB().QueryRowContext(ctx, "SELECT @@version").Scan(&m.ServerVersion); err != nil {
		return nil, fmt.Errorf("backup: read the server version: %w", err)
	}
	var src source
	switch m.Flavor {
	case gtid.MariaDB:
		m.Archive, src = ArchiveMbstream, mariadbSource{t}
	case gtid.MySQL:
		m.Archive, src = ArchiveTar, cloneSource{t: t, id: m.ID}
	default:
		return nil, fmt.Errorf("backup: unknown flavor %q", m.Flavor)
	}
	log := t.logger().With("backup", m.ID)
	l := layout{t.Cluster}
	if err := t.upload(ctx, m, l, srv, src, log); err != nil {
		cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if rerr := (Catalog{Store: t.Store, Cluster: t.Cluster}).Delete(cleanup, m.ID); rerr != nil {
			err = errors.Join(err, fmt.Errorf("remove what was uploaded: %w", rerr))
		}
		return nil, fmt.Errorf("backup %s: %w", m.ID, err)
	}
	log.Info("backup complete", "raw_bytes", m.RawBytes, "compressed_bytes", m.CompressedBytes, "objects", len(m.Objects),
		"gtid", m.GTIDExecuted, "took", m.EndTime.Sub(m.StartTime).Round(time.Millisecond))
	return m, nil
}

// upload streams the copy and writes the manifest, filling in m.
func (t *Taker) upload(ctx context.Context, m *Manifest, l layout, srv *mysqlctl.Server, src source, log *slog.Logger) error {
	estimate, err := src.estimate(ctx, srv)
	if err != nil {
		log.Debug("no size estimate: progress shows no ETA", "err", err)
	}
	prog := &progress{log: log, what: "backup", total: estimate, interval: progressEvery(t.ProgressInterval), begin: time.Now()}
	progCtx, stopProgress := context.WithCancel(ctx)
	defer stopProgress()
	go prog.run(progCtx)

	ow := &objectWriter{ctx: ctx, store: t.Store, key: func(name string) string { return l.key(m.ID, name) },
		limit: t.objectSize(), onPart: func(n int) { t.Metrics.moved("upload", n) }}
	enc, err := zstd.NewWriter(ow, zstd.WithEncoderLevel(t.level()))
	if err != nil {
		return fmt.Errorf("zstd: %w", err)
	}
	raw := &countingWriter{w: enc, add: prog.add}
	log.Info("backup starting", "flavor", m.Flavor, "expected_bytes", estimate)
	pos, err := src.stream(ctx, raw)
	if err == nil {
		err = enc.Close()
	}
	if err != nil {
		enc.Reset(io.Discard) // frees the encoder's workers
		ow.Abort(err)
		return err
	}
	if err := ow.Close(); err != nil {
		return err
	}
	m.GTIDExecuted, m.GTIDExecutedMax = pos.GTIDExecuted, pos.GTIDExecutedMax
	m.BinlogFile, m.BinlogPosition = pos.BinlogFile, pos.BinlogPos
	m.RawBytes, m.Objects = raw.n, ow.objects
	for _, o := range ow.objects {
		m.CompressedBytes += o.Size
	}
	m.EndTime = time.Now().UTC()
	b, err := m.Marshal()
	if err != nil {
		return err
	}
	if _, err := t.Store.Put(ctx, l.manifestKey(m.ID), bytes.NewReader(b)); err != nil {
		return fmt.Errorf("write the manifest: %w", err)
	}
	return nil
}

func (t *Taker) logger() *slog.Logger {
	if t.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return t.Log
}

func (t *Taker) objectSize() int64 {
	if t.ObjectSize > 0 {
		return t.ObjectSize
	}
	return DefaultObjectSize
}

func (t *Taker) level() zstd.EncoderLevel {
	if t.Level == 0 {
		return zstd.SpeedFastest
	}
	return t.Level
}

// source produces a flavor's physical copy as one stream.
type source interface {
	// estimate guesses the stream's size, for the ETA; 0 when it cannot tell.
	estimate(ctx context.Context, srv *mysqlctl.Server) (int64, error)
	// stream writes the copy to w and returns the position it stands at.
	stream(ctx context.Context, w io.Writer) (Position, error)
}

// countingWriter counts what passes through it.
type countingWriter struct {
	w   io.Writer
	n   int64
	add func(int)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.add(n)
	return n, err
}
