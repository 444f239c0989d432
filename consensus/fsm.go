package consensus

import (
	"fmt"
	"io"
	"sync/atomic"

	"github.com/hashicorp/raft"

	"github.com/shoal-db/shoal/consensus/record"
)

// applyResult is what the FSM returns for each command. A refused command (stale epoch,
// unknown member, undecodable bytes) is a normal result: every node refuses it alike, so it is
// reported to the proposer rather than treated as a failure of the node.
type applyResult struct {
	Record record.Record
	Err    error
}

// fsm holds the committed record. Raft calls Apply, Snapshot and Restore from one goroutine;
// readers load the pointer without locks. The pointed-to record is never changed after it is
// stored, and readers get a clone, so nobody can change what another goroutine reads.
type fsm struct {
	cur     atomic.Pointer[record.Record]
	changed func() // called, without blocking, after the record changed
}

func newFSM(changed func()) *fsm {
	f := &fsm{changed: changed}
	f.cur.Store(&record.Record{})
	return f
}

func (f *fsm) record() record.Record { return f.cur.Load().Clone() }

func (f *fsm) Apply(l *raft.Log) any {
	cur := *f.cur.Load()
	cmd, err := record.DecodeCommand(l.Data)
	if err != nil {
		return applyResult{Record: cur, Err: err}
	}
	next, err := record.Apply(cur, cmd)
	if err != nil {
		return applyResult{Record: cur, Err: err}
	}
	f.cur.Store(&next)
	f.changed()
	return applyResult{Record: next}
}

func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	return snapshot{rec: *f.cur.Load()}, nil
}

func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return fmt.Errorf("read snapshot: %w", err)
	}
	r, err := record.DecodeRecord(b)
	if err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	f.cur.Store(&r)
	f.changed()
	return nil
}

// snapshot is a point-in-time record; it may be persisted while Apply goes on, which is safe
// because stored records are never changed.
type snapshot struct{ rec record.Record }

func (s snapshot) Persist(sink raft.SnapshotSink) error {
	b, err := s.rec.Encode()
	if err == nil {
		_, err = sink.Write(b)
	}
	if err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("persist snapshot: %w", err)
	}
	return sink.Close()
}

func (snapshot) Release() {}
