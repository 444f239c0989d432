package backup_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/shoal-db/shoal/backup"
	"github.com/shoal-db/shoal/mysqlctl/gtid"
	"github.com/shoal-db/shoal/test/harness"
)

// newVerifier is a Verifier for the rig's flavor: MySQL runs in the harness's chroot, so the
// scratch dir lies inside it and the server gets its own view of the path.
func newVerifier(t *testing.T, r *rig, flavor gtid.Flavor) *backup.Verifier {
	t.Helper()
	v := &backup.Verifier{Restorer: r.restore, Member: "db1", Dir: t.TempDir(),
		Server: backup.ScratchServer{Command: []string{"/usr/sbin/mariadbd"}}}
	if flavor == gtid.MySQL {
		root := chrootOf(t, r.srv)
		dir, err := os.MkdirTemp(r.srv.Dir(), "v")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		v.Dir, v.ServerDir = dir, strings.TrimPrefix(dir, root)
		v.Server.Command = []string{"chroot", root, "/usr/sbin/mysqld"}
	}
	return v
}

// Verify restores a good backup, starts a server on it at the manifest's position and records
// the pass, which List shows. A manifest whose position the copy does not reach, a corrupted
// object and a missing object each fail it, recorded with the reason; every run leaves the
// scratch dir empty.
func TestVerifyBackup(t *testing.T) {
	harness.EachFlavor(t, func(t *testing.T, flavor gtid.Flavor) {
		r := newRig(t, flavor)
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
		defer cancel()
		fill(t, ctx, r.db(t, ctx), 3000)
		m, err := r.taker.Take(ctx)
		if err != nil {
			t.Fatal(err)
		}
		v := newVerifier(t, r, flavor)

		// A verifier that cannot run its server says so and marks nothing.
		broken := *v
		broken.Server.Command = []string{filepath.Join(t.TempDir(), "no-such-mysqld")}
		if res, err := broken.Verify(ctx, m.ID); err == nil || res.OK || !strings.Contains(err.Error(), "could not run") {
			t.Errorf("verify with a missing server program: %+v, %v", res, err)
		}
		if l := entry(t, ctx, r, m.ID); l.Verification != nil {
			t.Errorf("a test that could not run was recorded: %+v", l.Verification)
		}
		assertEmptyDir(t, v.Dir)

		res, err := v.Verify(ctx, m.ID)
		if err != nil || !res.OK {
			t.Fatalf("verify of a good backup: %+v, %v", res, err)
		}
		t.Logf("%s: %s (%.1f s)", flavor, res.Reason, res.Duration)
		if !strings.Contains(res.Reason, "1 InnoDB table(s) open") {
			t.Errorf("reason %q: want the one table of app opened", res.Reason)
		}
		listed := entry(t, ctx, r, m.ID)
		if listed.Verification == nil || !listed.Verification.OK || listed.Verification.Member != "db1" || !listed.Valid {
			t.Errorf("listed after a pass: %+v verification %+v", listed, listed.Verification)
		}
		if got, err := r.catalog.ForRestore(ctx); err != nil || got.ID != m.ID {
			t.Errorf("ForRestore = %v, %v; want the verified backup", got, err)
		}
		assertEmptyDir(t, v.Dir)

		// A manifest claiming a transaction the copy lacks: everything checks out but the position.
		good := readObject(t, ctx, r, m.ID, "manifest.json")
		bad := *m
		bad.GTIDExecuted, bad.GTIDExecutedMax = "0-1-999999", ""
		if flavor == gtid.MySQL {
			bad.GTIDExecuted, bad.GTIDExecutedMax = "00000000-0000-0000-0000-000000000001:1,"+m.GTIDExecuted, ""
		}
		b, err := bad.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		putObject(t, ctx, r, m.ID, "manifest.json", b)
		res, err = v.Verify(ctx, m.ID)
		if err == nil || res.OK || !strings.Contains(err.Error(), "the manifest says") {
			t.Errorf("verify with a position the copy does not reach: %+v, %v", res, err)
		} else {
			t.Logf("%s: %v", flavor, err)
		}
		if l := entry(t, ctx, r, m.ID); l.Verification == nil || l.Verification.OK || !strings.Contains(l.Verification.Reason, "the manifest says") {
			t.Errorf("listed after a failed position check: %+v", l.Verification)
		}
		assertEmptyDir(t, v.Dir)
		putObject(t, ctx, r, m.ID, "manifest.json", good)

		// One byte flipped in an object: the restore stops at its checksum, naming it.
		name := m.Objects[len(m.Objects)-1].Name
		obj := readObject(t, ctx, r, m.ID, name)
		obj[len(obj)/2] ^= 0xff
		putObject(t, ctx, r, m.ID, name, obj)
		res, err = v.Verify(ctx, m.ID)
		if !errors.Is(err, backup.ErrCorrupt) || !strings.Contains(err.Error(), name) || res.OK {
			t.Errorf("verify of a corrupted backup: %+v, %v; want ErrCorrupt naming %s", res, err, name)
		}
		if l := entry(t, ctx, r, m.ID); l.Verification == nil || l.Verification.OK || !strings.Contains(l.Verification.Reason, name) {
			t.Errorf("listed after a corrupt object: %+v", l.Verification)
		}
		if _, err := r.catalog.ForRestore(ctx); !errors.Is(err, backup.ErrNoBackup) {
			t.Errorf("ForRestore with only a failed backup: %v, want ErrNoBackup", err)
		}
		assertEmptyDir(t, v.Dir)

		// A missing object: the restore refuses up front, naming it.
		if err := r.minio.Client(t).RemoveObject(ctx, r.bucket, objectKey(m.ID, m.Objects[0].Name), minio.RemoveObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		res, err = v.Verify(ctx, m.ID)
		if !errors.Is(err, backup.ErrMissing) || !strings.Contains(err.Error(), m.Objects[0].Name) || res.OK {
			t.Errorf("verify with a missing object: %+v, %v; want ErrMissing naming %s", res, err, m.Objects[0].Name)
		} else {
			t.Logf("%s: %v", flavor, err)
		}
		if l := entry(t, ctx, r, m.ID); l.Valid || l.Verification == nil || !strings.Contains(l.Verification.Reason, m.Objects[0].Name+": missing") {
			t.Errorf("listed after a missing object: %+v, verification %+v", l, l.Verification)
		}
		assertEmptyDir(t, v.Dir)

		if err := r.catalog.Delete(ctx, m.ID); err != nil {
			t.Fatal(err)
		}
		assertBucketEmpty(t, ctx, r.minio, r.bucket)
	})
}

func entry(t *testing.T, ctx context.Context, r *rig, id string) backup.Entry {
	t.Helper()
	entries, err := r.catalog.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.ID == id {
			return e
		}
	}
	t.Fatalf("backup %s not listed: %+v", id, entries)
	return backup.Entry{}
}

func objectKey(id, name string) string { return "shoal/c1/backups/" + id + "/" + name }

func readObject(t *testing.T, ctx context.Context, r *rig, id, name string) []byte {
	t.Helper()
	obj, err := r.minio.Client(t).GetObject(ctx, r.bucket, objectKey(id, name), minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	b, err := io.ReadAll(obj)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func putObject(t *testing.T, ctx context.Context, r *rig, id, name string, b []byte) {
	t.Helper()
	if _, err := r.minio.Client(t).PutObject(ctx, r.bucket, objectKey(id, name), bytes.NewReader(b), int64(len(b)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
}

// assertEmptyDir checks a verification left nothing in its scratch parent.
func assertEmptyDir(t *testing.T, dir string) {
	t.Helper()
	left, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range left {
		t.Errorf("verify left %s in %s", filepath.Join(dir, e.Name()), dir)
	}
}
