package consensus

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/shoal-db/shoal/consensus/record"
)

// memSink is a raft.SnapshotSink in memory.
type memSink struct{ bytes.Buffer }

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Close() error  { return nil }
func (s *memSink) Cancel() error { return nil }

func applyEntry(t *testing.T, f *fsm, data []byte) applyResult {
	t.Helper()
	return f.Apply(&raft.Log{Type: raft.LogCommand, Data: data}).(applyResult)
}

func encodeCmd(t *testing.T, c record.Command) []byte {
	t.Helper()
	b, err := c.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestFSM(t *testing.T) {
	changes := 0
	f := newFSM(func() { changes++ })

	res := applyEntry(t, f, []byte("not json"))
	if !errors.Is(res.Err, record.ErrInvalidCommand) || changes != 0 {
		t.Fatalf("garbage entry: %+v, %d changes", res, changes)
	}
	res = applyEntry(t, f, encodeCmd(t, record.Command{Op: record.OpInit, Cluster: "c1"}))
	if res.Err != nil || res.Record.Cluster != "c1" || changes != 1 {
		t.Fatalf("init: %+v, %d changes", res, changes)
	}
	applyEntry(t, f, encodeCmd(t, record.Command{Op: record.OpUpsertMember, Member: &record.Member{ID: "db-0"}}))
	res = applyEntry(t, f, encodeCmd(t, record.Command{Op: record.OpSetPrimary, Epoch: 7, Primary: "db-0"}))
	if !errors.Is(res.Err, record.ErrStaleEpoch) || changes != 2 || res.Record.Epoch != 0 {
		t.Fatalf("stale set_primary: %+v, %d changes", res, changes)
	}
	want := f.record()

	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	// The snapshot is a point in time: later commands do not leak into it.
	applyEntry(t, f, encodeCmd(t, record.Command{Op: record.OpSetPaused, Paused: true}))
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()

	g := newFSM(func() { changes++ })
	if err := g.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	if got := g.record(); !equalRecords(got, want) {
		t.Errorf("restored %+v, want %+v", got, want)
	}
	if changes != 4 {
		t.Errorf("restore did not signal a change (%d)", changes)
	}
	if err := g.Restore(io.NopCloser(bytes.NewReader([]byte(`{"cluster":1}`)))); err == nil {
		t.Error("restore of a corrupt snapshot succeeded")
	}
	if got := g.record(); !equalRecords(got, want) {
		t.Errorf("a failed restore changed the record to %+v", got)
	}
}
