package backup

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// The readahead gives back src's bytes in order, whatever the chunk and read sizes, then src's
// error; drained tells a reader that took everything from one that stopped early.
func TestReadahead(t *testing.T) {
	src := make([]byte, 100_003)
	for i := range src {
		src[i] = byte(i * 7)
	}
	for _, chunk := range []int{1, 7, 4096, 200_000} {
		r := newReadahead(iotest.HalfReader(bytes.NewReader(src)), 3, chunk)
		got, err := io.ReadAll(iotest.OneByteReader(io.LimitReader(r, 50_000)))
		if err != nil || !bytes.Equal(got, src[:50_000]) {
			t.Fatalf("chunk %d: first half: %d bytes, %v", chunk, len(got), err)
		}
		if chunk < 50_000 && r.drained() {
			t.Fatalf("chunk %d: drained with half of src unread", chunk)
		}
		rest, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(append(got, rest...), src) {
			t.Fatalf("chunk %d: %d bytes in all, %v", chunk, len(got)+len(rest), err)
		}
		if !r.drained() {
			t.Fatalf("chunk %d: not drained after reading to the end", chunk)
		}
		r.Stop()
	}

	broken := errors.New("object 3: sha256 mismatch")
	r := newReadahead(io.MultiReader(bytes.NewReader(src[:10]), iotest.ErrReader(broken)), 2, 4)
	got, err := io.ReadAll(r)
	if !errors.Is(err, broken) || !bytes.Equal(got, src[:10]) {
		t.Fatalf("src failing after 10 bytes: %d bytes, %v", len(got), err)
	}
	if r.drained() {
		t.Fatal("drained although src failed")
	}
	r.Stop()

	// Stopped while src still has data: the goroutine ends, and a later read says so.
	r = newReadahead(bytes.NewReader(src), 1, 10)
	r.Stop()
	r.Stop()
	for {
		if _, err := r.Read(make([]byte, 10)); err != nil {
			if !errors.Is(err, io.ErrClosedPipe) {
				t.Fatalf("read after Stop: %v, want io.ErrClosedPipe", err)
			}
			break
		}
	}
}
