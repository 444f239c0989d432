package backup

import (
	"io"
	"sync"
)

// readahead reads src on a goroutine of its own, up to depth chunks of size bytes ahead of its
// reader, so that fetching and checking a backup's objects overlaps with decoding and unpacking
// them instead of taking turns on one goroutine. Stop ends the goroutine and waits for it; only
// then may src be used again (a restore's failure explains itself by reading on from src).
type readahead struct {
	full  chan []byte // chunks read, in order
	free  chan []byte // chunks to read into
	stop  chan struct{}
	done  chan struct{}
	err   error  // src's error, set before full is closed
	chunk []byte // the chunk being read from, whole
	cur   []byte // what is left of it
	once  sync.Once
}

func newReadahead(src io.Reader, depth, size int) *readahead {
	r := &readahead{full: make(chan []byte, depth), free: make(chan []byte, depth),
		stop: make(chan struct{}), done: make(chan struct{})}
	for range depth {
		r.free <- make([]byte, size)
	}
	go r.fill(src)
	return r
}

func (r *readahead) fill(src io.Reader) {
	defer close(r.done)
	defer close(r.full)
	for {
		var buf []byte
		select {
		case buf = <-r.free:
		case <-r.stop:
			return
		}
		n, err := io.ReadFull(src, buf[:cap(buf)])
		if n > 0 {
			select {
			case r.full <- buf[:n]:
			case <-r.stop:
				return
			}
		}
		switch err {
		case nil:
		case io.ErrUnexpectedEOF:
			r.err = io.EOF
			return
		default:
			r.err = err
			return
		}
	}
}

func (r *readahead) Read(p []byte) (int, error) {
	if len(r.cur) == 0 {
		buf, ok := <-r.full
		if !ok {
			if r.err == nil {
				return 0, io.ErrClosedPipe // read after Stop
			}
			return 0, r.err
		}
		r.chunk, r.cur = buf, buf
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	if len(r.cur) == 0 {
		r.free <- r.chunk[:cap(r.chunk)]
		r.chunk, r.cur = nil, nil
	}
	return n, nil
}

// Stop ends the reading goroutine and waits until it no longer touches src.
func (r *readahead) Stop() {
	r.once.Do(func() { close(r.stop) })
	<-r.done
}

// drained reports whether the reader was given all of src: src ended and no chunk is left. It
// waits for the goroutine when it is still reading: a decoder that stopped before the end must
// not pass for one that read it all.
func (r *readahead) drained() bool {
	if len(r.cur) > 0 {
		return false
	}
	buf, ok := <-r.full
	if ok {
		r.chunk, r.cur = buf, buf
		return false
	}
	return r.err == io.EOF
}
