// Package backup takes physical backups of the local MySQL or MariaDB server to an object store,
// lists, verifies and deletes them, and restores one into an empty data dir.
//
// A backup is a compressed (zstd) stream cut into objects of bounded size and uploaded as it is
// produced, then a manifest naming every object with its size and sha256. The manifest is
// written last and deleted first, so a backup is valid only while it and every object it names
// are there: a killed upload leaves objects without a manifest, listed as incomplete.
//
// Layout under the store's prefix: <cluster>/backups/<id>/data-000000.zst ... and
// <cluster>/backups/<id>/manifest.json.
package backup

import (
	"context"
	"io"
	"path"
	"strings"
)

// Store is the object store as backups use it; backup/s3store implements it with S3. Keys are
// relative to the store's own prefix.
type Store interface {
	// Check fails, with an error saying what to fix, when the store cannot be used: unreachable,
	// wrong credentials, no such bucket.
	Check(ctx context.Context) error
	// Put uploads r, whose size is not known in advance, as key; it returns the bytes stored. On
	// error nothing is left under key.
	Put(ctx context.Context, key string, r io.Reader) (int64, error)
	// Get opens key for reading; a missing key gives an error matching fs.ErrNotExist.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// List returns every object whose key starts with prefix, at any depth.
	List(ctx context.Context, prefix string) ([]ObjectInfo, error)
	// Remove deletes key; a missing key is no error.
	Remove(ctx context.Context, key string) error
	// RemoveIncomplete aborts the unfinished multipart uploads under prefix (a killed upload's).
	RemoveIncomplete(ctx context.Context, prefix string) error
}

// ObjectInfo is one object as the store lists it.
type ObjectInfo struct {
	Key  string
	Size int64
}

const manifestName = "manifest.json"

// layout maps a cluster's backups to keys.
type layout struct{ cluster string }

func (l layout) root() string                 { return path.Join(l.cluster, "backups") + "/" }
func (l layout) dir(id string) string         { return l.root() + id + "/" }
func (l layout) key(id, name string) string   { return l.dir(id) + name }
func (l layout) manifestKey(id string) string { return l.key(id, manifestName) }
func (l layout) split(key string) (id, name string, ok bool) {
	rest, found := strings.CutPrefix(key, l.root())
	if !found {
		return "", "", false
	}
	id, name, ok = strings.Cut(rest, "/")
	if !ok || id == "" || name == "" {
		return "", "", false
	}
	return id, name, true
}
