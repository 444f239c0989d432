package backup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"testing"
)

// memStore keeps objects in memory, for the pure logic of cutting a stream into objects; the
// S3 behaviour is tested against MinIO.
type memStore struct {
	mu      sync.Mutex
	objects map[string][]byte
	failAt  string // Put of this key fails after reading everything
}

func (s *memStore) Check(context.Context) error { return nil }

func (s *memStore) Put(_ context.Context, key string, r io.Reader) (int64, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return 0, err
	}
	if key == s.failAt {
		return 0, errors.New("store full")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.objects[key] = b
	return int64(len(b)), nil
}

func (s *memStore) Get(_ context.Context, key string) (io.ReadCloser, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.objects[key]
	if !ok {
		return nil, fs.ErrNotExist
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func (s *memStore) List(context.Context, string) ([]ObjectInfo, error) { return nil, nil }
func (s *memStore) Remove(context.Context, string) error               { return nil }
func (s *memStore) RemoveIncomplete(context.Context, string) error     { return nil }

func TestObjectWriter(t *testing.T) {
	const limit = 10
	for _, tc := range []struct {
		size  int
		sizes []int64
	}{
		{0, []int64{0}},
		{1, []int64{1}},
		{limit - 1, []int64{limit - 1}},
		{limit, []int64{limit}},
		{limit + 1, []int64{limit, 1}},
		{3 * limit, []int64{limit, limit, limit}},
		{3*limit + 7, []int64{limit, limit, limit, 7}},
	} {
		data := bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyz"), 2)[:tc.size]
		for _, write := range []int{1, 3, limit, 64} {
			store := &memStore{objects: map[string][]byte{}}
			w := &objectWriter{ctx: t.Context(), store: store, key: func(name string) string { return "b/" + name }, limit: limit}
			for b := data; len(b) > 0; {
				k := min(write, len(b))
				if n, err := w.Write(b[:k]); n != k || err != nil {
					t.Fatalf("write: %d, %v", n, err)
				}
				b = b[k:]
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			var joined []byte
			var sizes []int64
			for i, o := range w.objects {
				stored := store.objects["b/"+o.Name]
				sum := sha256.Sum256(stored)
				if o.Name != objectName(i) || o.Size != int64(len(stored)) || o.SHA256 != hex.EncodeToString(sum[:]) {
					t.Errorf("size %d, writes of %d: object %d is %+v, stored %d bytes", tc.size, write, i, o, len(stored))
				}
				sizes = append(sizes, o.Size)
				joined = append(joined, stored...)
			}
			if !bytes.Equal(joined, data) || !slices.Equal(sizes, tc.sizes) {
				t.Errorf("size %d, writes of %d: objects of %v holding %q, want %v holding %q", tc.size, write, sizes, joined, tc.sizes, data)
			}
		}
	}
}

// A failed upload stops the writer with an error naming the object.
func TestObjectWriterUploadFails(t *testing.T) {
	store := &memStore{objects: map[string][]byte{}, failAt: "b/" + objectName(1)}
	w := &objectWriter{ctx: t.Context(), store: store, key: func(name string) string { return "b/" + name }, limit: 4}
	_, err := w.Write([]byte("0123456789"))
	if err == nil || !strings.Contains(err.Error(), "upload data-000001.zst: store full") {
		t.Fatalf("write: %v", err)
	}
	if len(w.objects) != 1 {
		t.Errorf("objects after the failure: %+v", w.objects)
	}
}
