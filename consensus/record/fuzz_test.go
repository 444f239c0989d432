package record

import (
	"bytes"
	"reflect"
	"testing"
)

// FuzzDecodeCommand feeds arbitrary log entries to the FSM's path: decoding never panics, and a
// decoded command applies without panicking, deterministically, leaving its input untouched.
func FuzzDecodeCommand(f *testing.F) {
	for _, c := range []Command{
		{Op: OpInit, Cluster: "c1", At: t0},
		{Op: OpSetPrimary, Epoch: 4, Primary: "db-1", At: t0, Reason: "failover"},
		{Op: OpSetPrimary, Epoch: 3, Primary: "db-2"},
		{Op: OpUpsertMember, Member: &Member{ID: "db-3", RaftAddr: "a:1", Voter: true}},
		{Op: OpRemoveMember, MemberID: "db-2"},
		{Op: OpSetPaused, Paused: true},
		{Op: OpRequestSwitchover, Switchover: &Switchover{To: "db-1", RequestedAt: t0}},
		{Op: OpClearSwitchover},
		start(slot1, 1, "db-1"),
		start(slot1, 2, "db-2"),
		end(OpBackupDone, slot1, 1, "db-1", "b1"),
		end(OpBackupFailed, slot1, 1, "db-1", ""),
	} {
		b, err := c.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"op":"set_primary","epoch":18446744073709551615}`))
	f.Add([]byte(`{"op":"upsert_member","member":{"id":""}}`))
	f.Add([]byte(`null`))

	records := []Record{{}, base(), withJobs(job(slot1, 1, "db-1", JobRunning)), withJobs(job(slot1, 1, "db-1", JobFailed))}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := DecodeCommand(data)
		if err != nil {
			return
		}
		// The wire form is canonical after one round: an entry re-encoded by any agent decodes
		// to the same command.
		b1, err := c.Encode()
		if err != nil {
			return // e.g. a time JSON cannot write; such a command was never proposed
		}
		c2, err := DecodeCommand(b1)
		if err != nil {
			t.Fatalf("re-decoding %s: %v", b1, err)
		}
		if b2, _ := c2.Encode(); !bytes.Equal(b1, b2) {
			t.Fatalf("encoding not stable:\n%s\n%s", b1, b2)
		}
		for _, r := range records {
			before, _ := r.Encode()
			got1, err1 := Apply(r, c)
			got2, err2 := Apply(r.Clone(), c)
			if !reflect.DeepEqual(got1, got2) || errString(err1) != errString(err2) {
				t.Fatalf("Apply not deterministic: %+v / %v vs %+v / %v", got1, err1, got2, err2)
			}
			if err1 != nil && !reflect.DeepEqual(got1, r) {
				t.Fatalf("refused command changed the record: %+v -> %+v", r, got1)
			}
			if after, _ := r.Encode(); !bytes.Equal(before, after) {
				t.Fatalf("Apply changed its input")
			}
		}
	})
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
