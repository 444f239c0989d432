package kube

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// A node's containerd root shares the seed's blobs and unpacked layers and owns every other file:
// what containerd writes in place must not reach the seed, which later rigs copy again.
func TestCopySeed(t *testing.T) {
	seed, dst := filepath.Join(t.TempDir(), "seed"), filepath.Join(t.TempDir(), "root")
	files := map[string]bool{ // path in the root: shared with the seed
		"io.containerd.content.v1.content/blobs/sha256/ab12":           true,
		"io.containerd.snapshotter.v1.overlayfs/snapshots/1/fs/bin/sh": true,
		"io.containerd.snapshotter.v1.overlayfs/snapshots/2/fs/etc/my": true,
		"io.containerd.snapshotter.v1.overlayfs/metadata.db":           false,
		"io.containerd.snapshotter.v1.overlayfs/snapshots/1/work/x":    false,
		"io.containerd.metadata.v1.bolt/meta.db":                       false,
		"io.containerd.grpc.v1.introspection/uuid":                     false,
	}
	for f := range files {
		if err := writeFile(filepath.Join(seed, f), "seed "+f, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	if err := copySeed(t.Context(), seed, dst); err != nil {
		t.Fatal(err)
	}
	for f, shared := range files {
		a, b := inode(t, filepath.Join(seed, f)), inode(t, filepath.Join(dst, f))
		if (a.Ino == b.Ino) != shared {
			t.Errorf("%s: shared with the seed %v, want %v", f, a.Ino == b.Ino, shared)
		}
		if b.Mode&0o777 != 0o640 {
			t.Errorf("%s: mode %o, want 640", f, b.Mode&0o777)
		}
		if body, err := os.ReadFile(filepath.Join(dst, f)); err != nil || string(body) != "seed "+f {
			t.Errorf("%s: %q, %v", f, body, err)
		}
	}
	if err := os.WriteFile(filepath.Join(dst, "io.containerd.metadata.v1.bolt/meta.db"), []byte("node"), 0o640); err != nil {
		t.Fatal(err)
	}
	if body, _ := os.ReadFile(filepath.Join(seed, "io.containerd.metadata.v1.bolt/meta.db")); string(body) == "node" {
		t.Error("a write to the node's database reached the seed")
	}
}

func inode(t *testing.T, path string) *syscall.Stat_t {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t)
}
