package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
)

// objectWriter cuts what is written to it into objects of at most limit bytes and uploads each
// as it comes (Store.Put streams it), hashing on the way. Only one object is open at a time, so
// memory is bounded by the store's part buffer whatever the backup's size.
type objectWriter struct {
	ctx    context.Context
	store  Store
	key    func(name string) string
	limit  int64
	onPart func(n int) // counts bytes as they go out, for progress

	pipe    *io.PipeWriter
	result  chan putResult
	hash    hash.Hash
	written int64
	objects []Object
}

type putResult struct {
	n   int64
	err error
}

func (w *objectWriter) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		if w.pipe == nil {
			w.open()
		}
		k := int(min(int64(len(p)), w.limit-w.written))
		n, err := w.pipe.Write(p[:k])
		w.hash.Write(p[:n])
		w.written += int64(n)
		if w.onPart != nil {
			w.onPart(n)
		}
		if err != nil {
			// The upload ended early: its own error says why.
			return total - len(p) + n, w.finish(err)
		}
		p = p[k:]
		if w.written == w.limit {
			if err := w.finish(nil); err != nil {
				return total - len(p), err
			}
		}
	}
	return total, nil
}

func (w *objectWriter) open() {
	r, pw := io.Pipe()
	w.pipe, w.hash, w.written = pw, sha256.New(), 0
	w.result = make(chan putResult, 1)
	name := objectName(len(w.objects))
	key := w.key(name)
	go func() {
		n, err := w.store.Put(w.ctx, key, r)
		// Unblock a writer still writing after a failed upload.
		r.CloseWithError(errors.Join(err, errors.New("upload ended")))
		w.result <- putResult{n, err}
	}()
}

// finish closes the open object (with cause, aborting its upload, when not nil) and waits for
// its upload.
func (w *objectWriter) finish(cause error) error {
	if w.pipe == nil {
		return cause
	}
	if cause != nil {
		w.pipe.CloseWithError(cause)
	} else {
		w.pipe.Close()
	}
	res := <-w.result
	w.pipe = nil
	name := objectName(len(w.objects))
	switch {
	case res.err != nil:
		return fmt.Errorf("upload %s: %w", name, res.err)
	case cause != nil:
		return cause
	case res.n != w.written:
		return fmt.Errorf("upload %s: the store took %d bytes of %d", name, res.n, w.written)
	}
	w.objects = append(w.objects, Object{Name: name, Size: w.written, SHA256: hex.EncodeToString(w.hash.Sum(nil))})
	return nil
}

// Close uploads the last object; a backup always has at least one, even when empty.
func (w *objectWriter) Close() error {
	if w.pipe == nil && len(w.objects) == 0 {
		w.open()
	}
	return w.finish(nil)
}

// Abort stops the open upload with cause; the store drops what it had of it.
func (w *objectWriter) Abort(cause error) {
	_ = w.finish(cause)
}
