package backup

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"

	"github.com/shoal-db/shoal/reseed"
)

// Restorer restores backups from a catalog into empty data dirs.
type Restorer struct {
	Catalog Catalog
	// Tools names mariadb-backup and mbstream, for MariaDB backups.
	Tools reseed.Tools
	// ProgressInterval is how often progress is logged (0: every 30 s).
	ProgressInterval time.Duration
	Metrics          *Metrics
	Log              *slog.Logger
}

// Restore makes dataDir a data dir a server can start on, holding backup id. dataDir must not
// exist or be empty. The backup is downloaded, checked against the manifest's sizes and sha256
// while it streams, decompressed and unpacked (MariaDB's prepared too) in a new directory beside
// dataDir, which is renamed to dataDir only once all of it checked out: a failed restore leaves
// dataDir as it was. The restored files get dataDir's owner when it exists.
func (r *Restorer) Restore(ctx context.Context, id, dataDir string) (m *Manifest, err error) {
	begin := time.Now()
	defer func() { r.Metrics.done("restore", begin, time.Now(), err) }()
	fail := func(step string, err error) (*Manifest, error) {
		return nil, fmt.Errorf("restore %s into %s: %s: %w", id, dataDir, step, err)
	}
	dataDir, err = filepath.Abs(dataDir)
	if err != nil {
		return fail("data dir", err)
	}
	if err := checkEmpty(dataDir); err != nil {
		return fail("data dir", err)
	}
	m, err = r.Catalog.Manifest(ctx, id)
	if err != nil {
		return fail("manifest", err)
	}
	l := layout{r.Catalog.Cluster}
	objs, err := r.Catalog.Store.List(ctx, l.dir(id))
	if err != nil {
		return fail("list objects", err)
	}
	have := map[string]int64{}
	for _, o := range objs {
		if _, name, ok := l.split(o.Key); ok {
			have[name] = o.Size
		}
	}
	if err := presence(m, have); err != nil {
		return fail("objects", err)
	}
	log := r.logger().With("backup", id, "data_dir", dataDir)
	staging, err := os.MkdirTemp(filepath.Dir(dataDir), "."+filepath.Base(dataDir)+".restore-")
	if err != nil {
		return fail("staging dir", err)
	}
	defer os.RemoveAll(staging) // after the rename, nothing is left there
	if err := os.Chmod(staging, 0o750); err != nil {
		return fail("staging dir", err)
	}
	prog := &progress{log: log, what: "restore", total: m.CompressedBytes, interval: progressEvery(r.ProgressInterval), begin: time.Now()}
	progCtx, stopProgress := context.WithCancel(ctx)
	defer stopProgress()
	go prog.run(progCtx)
	log.Info("restore starting", "flavor", m.Flavor, "compressed_bytes", m.CompressedBytes, "raw_bytes", m.RawBytes)

	objects := &objectsReader{ctx: ctx, catalog: r.Catalog, id: id, objects: m.Objects,
		onRead: func(n int) { prog.add(n); r.Metrics.moved("download", n) }}
	defer objects.Close()
	// The objects are fetched and checked on a goroutine of their own, up to 4 MiB ahead of the
	// decoder; on the caller's, one decoding goroutine. After a failure the readahead is stopped
	// first, so nothing else reads the objects and the object being read can be checked to the
	// end (cause).
	ahead := newReadahead(objects, restoreAheadChunks, restoreChunkSize)
	defer ahead.Stop()
	dec, err := zstd.NewReader(ahead, zstd.WithDecoderConcurrency(1))
	if err != nil {
		return fail("zstd", err)
	}
	defer dec.Close()
	var unpacked int64
	switch m.Archive {
	case ArchiveMbstream:
		unpacked, err = unpackMbstream(ctx, dec, staging, r.Tools, log)
	case ArchiveTar:
		raw := &countingReader{r: dec}
		err = untar(raw, staging)
		// What untar left unread (the tar's padding) must still pass the checks.
		if err == nil {
			_, err = io.Copy(io.Discard, raw)
		}
		unpacked = raw.n
	default:
		err = fmt.Errorf("unknown archive %q", m.Archive)
	}
	switch {
	case err != nil:
		// A damaged object makes the decoder or the unpacker fail before its checksum is reached:
		// say which object it was rather than what choked on it.
		ahead.Stop()
		if cause := objects.cause(); cause != nil {
			err = fmt.Errorf("%w (%w)", cause, err)
		}
		return fail("unpack", err)
	case !ahead.drained() || !objects.finished():
		return fail("unpack", fmt.Errorf("the archive ended before its last object: %w", ErrCorrupt))
	case unpacked != m.RawBytes:
		return fail("unpack", fmt.Errorf("%d bytes unpacked, the manifest says %d: %w", unpacked, m.RawBytes, ErrCorrupt))
	}
	if err := reseed.ChownLike(staging, dataDir); err != nil {
		return fail("hand the files to the data dir's owner", err)
	}
	if err := syncFS(staging); err != nil {
		return fail("sync the restored files", err)
	}
	// rename(2) replaces an empty directory (os.Rename refuses to), so an empty dataDir made
	// ready by an operator is replaced at once, and one filled meanwhile is not (ENOTEMPTY).
	if err := syscall.Rename(staging, dataDir); err != nil {
		return fail("move the restored data in", err)
	}
	if err := syncDir(filepath.Dir(dataDir)); err != nil {
		return fail("sync", err)
	}
	log.Info("restore complete", "gtid", m.GTIDExecuted, "took", time.Since(begin).Round(time.Millisecond))
	return m, nil
}

func (r *Restorer) logger() *slog.Logger {
	if r.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Log
}

// progressEvery is the configured progress interval or the default.
func progressEvery(d time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return defaultProgressInterval
}

// mbstreamPipeSize is the pipe into mbstream -x: 1 MiB (Linux's default fs.pipe-max-size)
// holds several decoded zstd blocks, where the default 64 KiB holds half of one, so the decoder
// and mbstream wake each other less often.
const mbstreamPipeSize = 1 << 20

// unpackMbstream decodes the archive into a pipe that is mbstream -x's stdin itself, and
// returns how many bytes it decoded. Given an io.Reader, exec would copy it into a pipe of its
// own in 32 KiB writes from one more goroutine; here the decoder writes each block straight into
// the pipe. A decoder that fails cancels the unpack before it closes the pipe, so mbstream's
// end of input never passes for the archive's and no prepare starts on a partial copy.
func unpackMbstream(ctx context.Context, dec *zstd.Decoder, dir string, tools reseed.Tools, log *slog.Logger) (int64, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	// Best effort: a smaller pipe is slower, not wrong. (Through SyscallConn: Fd would make the
	// pipe blocking, and each full pipe would hold a thread.)
	if sc, err := pw.SyscallConn(); err == nil {
		_ = sc.Control(func(fd uintptr) { _, _ = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, mbstreamPipeSize) })
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	raw := &countingWriter{w: pw, add: func(int) {}}
	fed := make(chan error, 1)
	go func() {
		_, err := dec.WriteTo(raw)
		if err != nil {
			cancel()
		}
		pw.Close()
		fed <- err
	}()
	err = reseed.Unpack(ctx, pr, dir, tools, log)
	// mbstream has exited: a decoder still writing gets EPIPE rather than waiting for a reader.
	pr.Close()
	ferr := <-fed
	if ferr != nil && (err == nil || !errors.Is(ferr, syscall.EPIPE)) {
		// A broken pipe is mbstream's failure, told by err; anything else is the archive's.
		return raw.n, fmt.Errorf("decode: %w", ferr)
	}
	return raw.n, err
}

// checkEmpty refuses a data dir that holds anything: a restore never mixes two servers' files.
func checkEmpty(dir string) error {
	f, err := os.Open(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if err != nil && err != io.EOF {
		return err
	}
	if len(names) > 0 {
		return fmt.Errorf("%s is not empty (it holds %s): restore only into an empty or new directory", dir, names[0])
	}
	return nil
}

// syncFS flushes the file system holding dir (syncfs(2)), so that everything a restore wrote
// there is on disk before the rename makes it the data dir: mbstream -x does not sync what it
// writes, and one flush at the end lets the writes go out while the rest unpacks, where a sync
// per file made each file's end wait for its writeback.
func syncFS(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Syncfs(int(f.Fd()))
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// objectsReader reads a backup's objects one after another as one stream, each checked.
// A restore reads ahead this many chunks of this size: enough to keep the download going while
// a chunk is decoded and written, little memory.
const (
	restoreAheadChunks = 4
	restoreChunkSize   = 1 << 20
)

type objectsReader struct {
	ctx     context.Context
	catalog Catalog
	id      string
	objects []Object
	onRead  func(int)

	next int
	cur  io.ReadCloser
	done bool
	err  error // the first read error
}

func (r *objectsReader) Read(p []byte) (int, error) {
	for {
		if r.cur == nil {
			if r.next == len(r.objects) {
				r.done = true
				return 0, io.EOF
			}
			rc, err := r.catalog.openObject(r.ctx, r.id, r.objects[r.next])
			if err != nil {
				return 0, err
			}
			r.cur, r.next = rc, r.next+1
		}
		n, err := r.cur.Read(p)
		r.onRead(n)
		if err != nil && err != io.EOF && r.err == nil {
			r.err = err
		}
		if err == io.EOF {
			r.cur.Close()
			r.cur = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

// cause explains a failed restore by the objects: the error reading one, or else what checking
// the rest of the object being read finds; nil when they are fine so far.
func (r *objectsReader) cause() error {
	if r.err != nil || r.cur == nil {
		return r.err
	}
	_, err := io.Copy(io.Discard, r.cur)
	return err
}

// finished reports whether every object was read to its checked end.
func (r *objectsReader) finished() bool { return r.done }

func (r *objectsReader) Close() error {
	if r.cur != nil {
		return r.cur.Close()
	}
	return nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// untar unpacks a tar of directories and regular files into dir, refusing any entry that would
// land outside it or is of another kind.
func untar(r io.Reader, dir string) error {
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("tar: %w", err)
		}
		target, err := safeJoin(dir, hdr.Name)
		if err != nil {
			return fmt.Errorf("tar: %w", err)
		}
		mode := os.FileMode(hdr.Mode).Perm()
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, mode|0o700); err != nil {
				return fmt.Errorf("tar: %w", err)
			}
		case tar.TypeReg:
			if err := writeFile(target, tr, mode); err != nil {
				return fmt.Errorf("tar: %s: %w", hdr.Name, err)
			}
		default:
			return fmt.Errorf("tar: %s: entry of type %q: only directories and files are expected", hdr.Name, hdr.Typeflag)
		}
	}
}

func writeFile(name string, r io.Reader, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(name), 0o750); err != nil {
		return err
	}
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, r) // synced with the rest of the restore (syncFS)
	return errors.Join(err, f.Close())
}

// safeJoin returns dir/name for an archive entry's name, refusing names that are absolute or
// climb out of dir.
func safeJoin(dir, name string) (string, error) {
	clean := path.Clean(strings.TrimSuffix(name, "/"))
	if name == "" || path.IsAbs(name) || clean == "." || clean == ".." || strings.HasPrefix(clean, "../") || strings.Contains(name, "\x00") {
		return "", fmt.Errorf("entry name %q is not a path inside the archive", name)
	}
	return filepath.Join(dir, filepath.FromSlash(clean)), nil
}
