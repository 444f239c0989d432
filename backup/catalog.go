package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"slices"
	"strings"
	"time"
)

var (
	// ErrMissing marks a backup object (or manifest) that is not in the store.
	ErrMissing = errors.New("missing")
	// ErrCorrupt marks an object whose size or sha256 is not what the manifest says.
	ErrCorrupt = errors.New("corrupt")
	// ErrNoBackup is returned when no valid backup matches.
	ErrNoBackup = errors.New("no valid backup")
)

// Catalog is one cluster's backups in a store.
type Catalog struct {
	Store   Store
	Cluster string
}

// Entry is one backup as listed: valid when its manifest reads and every object it names is
// there with the size it says (Verify also checks their sha256).
type Entry struct {
	ID string
	// Started is when the backup started, from its id: with Incomplete, it tells an upload that
	// died from one still running.
	Started time.Time
	// Manifest is nil when there is none or it does not read.
	Manifest *Manifest
	Valid    bool
	// Incomplete is set when there is no manifest: an upload that died, or one running.
	Incomplete bool
	// Problem says why the backup is not valid.
	Problem string
	// StoredBytes is what its objects take in the store, manifest excluded.
	StoredBytes int64
	// Verification is the outcome of its last restore test (Verifier); nil when never tested.
	Verification *Verification `json:",omitempty"`
}

// List returns every backup of the cluster, oldest first (ids start with the start time).
func (c Catalog) List(ctx context.Context) ([]Entry, error) {
	l := layout{c.Cluster}
	objs, err := c.Store.List(ctx, l.root())
	if err != nil {
		return nil, fmt.Errorf("list backups: %w", err)
	}
	sizes := map[string]map[string]int64{} // id -> name -> size
	for _, o := range objs {
		id, name, ok := l.split(o.Key)
		if !ok {
			continue
		}
		if sizes[id] == nil {
			sizes[id] = map[string]int64{}
		}
		sizes[id][name] = o.Size
	}
	ids := make([]string, 0, len(sizes))
	for id := range sizes {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	out := make([]Entry, 0, len(ids))
	for _, id := range ids {
		e := Entry{ID: id, Started: idTime(id)}
		for name, size := range sizes[id] {
			if name != manifestName && name != verificationName {
				e.StoredBytes += size
			}
		}
		if _, ok := sizes[id][manifestName]; !ok {
			e.Incomplete = true
			e.Problem = "incomplete: no manifest (an upload that did not finish, or one running)"
			out = append(out, e)
			continue
		}
		m, err := c.Manifest(ctx, id)
		if err != nil {
			e.Problem = oneLine(err)
			out = append(out, e)
			continue
		}
		e.Manifest = m
		if err := presence(m, sizes[id]); err != nil {
			e.Problem = oneLine(err)
		}
		if _, ok := sizes[id][verificationName]; ok {
			if e.Verification, err = c.verification(ctx, id); err != nil {
				// Unreadable is not a pass: say why, so a restore does not prefer it.
				e.Verification = &Verification{Format: verificationFormat, Reason: oneLine(err)}
			}
		}
		e.Valid = e.Problem == ""
		out = append(out, e)
	}
	return out, nil
}

// presence checks the objects the store holds for m (name to size) by name and size, without
// reading them: each problem matches ErrMissing or ErrCorrupt.
func presence(m *Manifest, have map[string]int64) error {
	var errs []error
	for _, o := range m.Objects {
		size, ok := have[o.Name]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("object %s: %w", o.Name, ErrMissing))
		case size != o.Size:
			errs = append(errs, fmt.Errorf("object %s: %d bytes, the manifest says %d: %w", o.Name, size, o.Size, ErrCorrupt))
		}
	}
	return errors.Join(errs...)
}

// readSmall reads an object of at most limit bytes whole (a manifest, a verification record);
// a missing one gives an error matching fs.ErrNotExist.
func readSmall(ctx context.Context, store Store, key string, limit int64) ([]byte, error) {
	rc, err := store.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(io.LimitReader(rc, limit))
}

// oneLine puts a joined error on one line, for a listing.
func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }

// Manifest reads and checks one backup's manifest.
func (c Catalog) Manifest(ctx context.Context, id string) (*Manifest, error) {
	if !ValidID(id) {
		return nil, fmt.Errorf("backup id %q: want YYYYMMDDTHHMMSSZ-member", id)
	}
	b, err := readSmall(ctx, c.Store, layout{c.Cluster}.manifestKey(id), 1<<20)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("backup %s: manifest %w (an incomplete or deleted backup)", id, ErrMissing)
	}
	if err != nil {
		return nil, fmt.Errorf("backup %s: read the manifest: %w", id, err)
	}
	m, err := ParseManifest(b)
	if err != nil {
		return nil, fmt.Errorf("backup %s: %w", id, err)
	}
	if m.ID != id || m.Cluster != c.Cluster {
		return nil, fmt.Errorf("backup %s: the manifest is of backup %s of cluster %s", id, m.ID, m.Cluster)
	}
	return m, nil
}

// Latest returns the newest valid backup.
func (c Catalog) Latest(ctx context.Context) (*Manifest, error) {
	entries, err := c.List(ctx)
	if err != nil {
		return nil, err
	}
	for _, e := range slices.Backward(entries) {
		if e.Valid {
			return e.Manifest, nil
		}
	}
	return nil, fmt.Errorf("cluster %s: %w", c.Cluster, ErrNoBackup)
}

// Verify downloads every object of a backup and checks its size and sha256 against the
// manifest. All problems are reported, each matching ErrMissing or ErrCorrupt.
func (c Catalog) Verify(ctx context.Context, id string) (*Manifest, error) {
	m, err := c.Manifest(ctx, id)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, o := range m.Objects {
		if err := c.checkObject(ctx, id, o); err != nil {
			if ctx.Err() != nil {
				return m, err
			}
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return m, fmt.Errorf("backup %s: %w", id, err)
	}
	return m, nil
}

func (c Catalog) checkObject(ctx context.Context, id string, o Object) error {
	rc, err := c.openObject(ctx, id, o)
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = io.Copy(io.Discard, rc)
	return err
}

// openObject opens one object for reading; the reader fails with ErrCorrupt instead of ending
// when the object's size or sha256 is not the manifest's.
func (c Catalog) openObject(ctx context.Context, id string, o Object) (io.ReadCloser, error) {
	rc, err := c.Store.Get(ctx, layout{c.Cluster}.key(id, o.Name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("object %s: %w", o.Name, ErrMissing)
	}
	if err != nil {
		return nil, fmt.Errorf("object %s: %w", o.Name, err)
	}
	return &checkedReader{rc: rc, obj: o, hash: sha256.New()}, nil
}

// checkedReader passes an object through, hashing it, and turns its end into an error when it
// is not the object the manifest describes.
type checkedReader struct {
	rc   io.ReadCloser
	obj  Object
	hash hash.Hash
	n    int64
}

func (r *checkedReader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	r.hash.Write(p[:n])
	r.n += int64(n)
	if r.n > r.obj.Size {
		return n, fmt.Errorf("object %s: more than the %d bytes the manifest says: %w", r.obj.Name, r.obj.Size, ErrCorrupt)
	}
	if err == io.EOF {
		if r.n != r.obj.Size {
			return n, fmt.Errorf("object %s: %d bytes, the manifest says %d: %w", r.obj.Name, r.n, r.obj.Size, ErrCorrupt)
		}
		if sum := hex.EncodeToString(r.hash.Sum(nil)); sum != r.obj.SHA256 {
			return n, fmt.Errorf("object %s: sha256 %s, the manifest says %s: %w", r.obj.Name, sum, r.obj.SHA256, ErrCorrupt)
		}
	} else if err != nil {
		err = fmt.Errorf("object %s: %w", r.obj.Name, err)
	}
	return n, err
}

func (r *checkedReader) Close() error { return r.rc.Close() }

// Delete removes a backup: the manifest first, so it stops being valid at once, then its objects
// and any upload of it left unfinished. Deleting what is not there is no error.
func (c Catalog) Delete(ctx context.Context, id string) error {
	if !ValidID(id) {
		return fmt.Errorf("backup id %q: want YYYYMMDDTHHMMSSZ-member", id)
	}
	l := layout{c.Cluster}
	if err := c.Store.Remove(ctx, l.manifestKey(id)); err != nil {
		return fmt.Errorf("delete backup %s: %w", id, err)
	}
	objs, err := c.Store.List(ctx, l.dir(id))
	if err != nil {
		return fmt.Errorf("delete backup %s: %w", id, err)
	}
	var errs []error
	for _, o := range objs {
		if err := c.Store.Remove(ctx, o.Key); err != nil {
			errs = append(errs, err)
		}
	}
	if err := c.Store.RemoveIncomplete(ctx, l.dir(id)); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("delete backup %s: %w", id, err)
	}
	return nil
}
