package record

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// base is an initialized record with three members and db-0 primary in epoch 4.
func base() Record {
	return Record{
		Cluster: "c1",
		Epoch:   4,
		Primary: "db-0",
		Members: map[string]Member{
			"db-0": {ID: "db-0", RaftAddr: "10.0.0.1:7000", Voter: true},
			"db-1": {ID: "db-1", RaftAddr: "10.0.0.2:7000", Voter: true},
			"db-2": {ID: "db-2", RaftAddr: "10.0.0.3:7000", Voter: true},
		},
		LastPrimaryChange: t0,
	}
}

func TestApply(t *testing.T) {
	withMembers := func(r Record, f func(map[string]Member)) Record {
		r = r.Clone()
		f(r.Members)
		return r
	}
	runApplyCases(t, []applyCase{
		{"init names the cluster", Record{}, Command{Op: OpInit, Cluster: "c1"}, Record{Cluster: "c1"}, nil},
		{"init twice is refused", base(), Command{Op: OpInit, Cluster: "c2"}, base(), ErrAlreadyInitialized},
		{"init without a name", Record{}, Command{Op: OpInit}, Record{}, ErrInvalidCommand},
		{
			"set primary in the current epoch moves to the next",
			base(),
			Command{Op: OpSetPrimary, Epoch: 4, Primary: "db-1", At: t0.Add(time.Hour), Reason: "db-0 down"},
			func() Record {
				r := base()
				r.Epoch, r.Primary, r.LastPrimaryChange, r.LastReason = 5, "db-1", t0.Add(time.Hour), "db-0 down"
				return r
			}(),
			nil,
		},
		{
			"set primary clears a pending switchover",
			func() Record { r := base(); r.Switchover = &Switchover{To: "db-2", RequestedAt: t0}; return r }(),
			Command{Op: OpSetPrimary, Epoch: 4, Primary: "db-2", At: t0},
			func() Record { r := base(); r.Epoch, r.Primary = 5, "db-2"; return r }(),
			nil,
		},
		{
			"set primary to none fences everyone",
			base(),
			Command{Op: OpSetPrimary, Epoch: 4, At: t0},
			func() Record { r := base(); r.Epoch, r.Primary = 5, ""; return r }(),
			nil,
		},
		{"stale epoch is refused", base(), Command{Op: OpSetPrimary, Epoch: 3, Primary: "db-1"}, base(), ErrStaleEpoch},
		{"future epoch is refused", base(), Command{Op: OpSetPrimary, Epoch: 5, Primary: "db-1"}, base(), ErrStaleEpoch},
		{"primary must be a member", base(), Command{Op: OpSetPrimary, Epoch: 4, Primary: "db-9"}, base(), ErrInvalidCommand},
		{
			"epoch never wraps",
			func() Record { r := base(); r.Epoch = math.MaxUint64; return r }(),
			Command{Op: OpSetPrimary, Epoch: math.MaxUint64, Primary: "db-1"},
			func() Record { r := base(); r.Epoch = math.MaxUint64; return r }(),
			ErrInvalidCommand,
		},
		{
			"upsert adds a member",
			base(),
			Command{Op: OpUpsertMember, Member: &Member{ID: "db-3", RaftAddr: "10.0.0.4:7000"}},
			withMembers(base(), func(m map[string]Member) { m["db-3"] = Member{ID: "db-3", RaftAddr: "10.0.0.4:7000"} }),
			nil,
		},
		{
			"upsert into an empty record",
			Record{},
			Command{Op: OpUpsertMember, Member: &Member{ID: "db-0"}},
			Record{Members: map[string]Member{"db-0": {ID: "db-0"}}},
			nil,
		},
		{
			"upsert updates a member",
			base(),
			Command{Op: OpUpsertMember, Member: &Member{ID: "db-1", RaftAddr: "10.0.0.9:7000"}},
			withMembers(base(), func(m map[string]Member) { m["db-1"] = Member{ID: "db-1", RaftAddr: "10.0.0.9:7000"} }),
			nil,
		},
		{"upsert without a member", base(), Command{Op: OpUpsertMember}, base(), ErrInvalidCommand},
		{"upsert without an id", base(), Command{Op: OpUpsertMember, Member: &Member{}}, base(), ErrInvalidCommand},
		{
			"remove a replica",
			base(),
			Command{Op: OpRemoveMember, MemberID: "db-2"},
			withMembers(base(), func(m map[string]Member) { delete(m, "db-2") }),
			nil,
		},
		{"remove the primary is refused", base(), Command{Op: OpRemoveMember, MemberID: "db-0"}, base(), ErrInvalidCommand},
		{"remove an unknown member", base(), Command{Op: OpRemoveMember, MemberID: "db-9"}, base(), ErrInvalidCommand},
		{"pause", base(), Command{Op: OpSetPaused, Paused: true}, func() Record { r := base(); r.Paused = true; return r }(), nil},
		{
			"request a switchover",
			base(),
			Command{Op: OpRequestSwitchover, Switchover: &Switchover{To: "db-1", RequestedAt: t0}},
			func() Record { r := base(); r.Switchover = &Switchover{To: "db-1", RequestedAt: t0}; return r }(),
			nil,
		},
		{
			"request a switchover to any replica",
			base(),
			Command{Op: OpRequestSwitchover, Switchover: &Switchover{RequestedAt: t0}},
			func() Record { r := base(); r.Switchover = &Switchover{RequestedAt: t0}; return r }(),
			nil,
		},
		{"switchover without details", base(), Command{Op: OpRequestSwitchover}, base(), ErrInvalidCommand},
		{
			"switchover while paused is refused",
			func() Record { r := base(); r.Paused = true; return r }(),
			Command{Op: OpRequestSwitchover, Switchover: &Switchover{To: "db-1", RequestedAt: t0}},
			func() Record { r := base(); r.Paused = true; return r }(),
			ErrInvalidCommand,
		},
		{"switchover to a non-member", base(), Command{Op: OpRequestSwitchover, Switchover: &Switchover{To: "db-9"}}, base(), ErrInvalidCommand},
		{"switchover to the primary", base(), Command{Op: OpRequestSwitchover, Switchover: &Switchover{To: "db-0"}}, base(), ErrInvalidCommand},
		{
			"clear a switchover",
			func() Record { r := base(); r.Switchover = &Switchover{To: "db-1"}; return r }(),
			Command{Op: OpClearSwitchover},
			base(),
			nil,
		},
		{"unknown op", base(), Command{Op: "explode"}, base(), ErrInvalidCommand},
	})
}

// applyCase is one command applied to a record: the record or the error it gives.
type applyCase struct {
	name    string
	in      Record
	cmd     Command
	want    Record
	wantErr error
}

// runApplyCases applies each case's command and checks the result, and that the input record
// is left as it was.
func runApplyCases(t *testing.T, tests []applyCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := encode(t, tt.in)
			got, err := Apply(tt.in, tt.cmd)
			if !errors.Is(err, tt.wantErr) || (err != nil) != (tt.wantErr != nil) {
				t.Fatalf("Apply error = %v, want %v", err, tt.wantErr)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Apply = %+v\nwant    %+v", got, tt.want)
			}
			if after := encode(t, tt.in); after != before {
				t.Errorf("Apply changed its input:\n%s\n%s", before, after)
			}
		})
	}
}

func TestApplyResultIsIndependentOfInput(t *testing.T) {
	in := base()
	in.Switchover = &Switchover{To: "db-2"}
	in.BackupJobs = []BackupJob{{Slot: t0, Attempt: 1, Member: "db-1", State: JobRunning}}
	out, err := Apply(in, Command{Op: OpUpsertMember, Member: &Member{ID: "db-3"}})
	if err != nil {
		t.Fatal(err)
	}
	out.Members["db-0"] = Member{ID: "changed"}
	out.Switchover.To = "changed"
	out.BackupJobs[0].Member = "changed"
	if in.Members["db-0"].ID != "db-0" || in.Switchover.To != "db-2" || in.BackupJobs[0].Member != "db-1" {
		t.Fatalf("changing Apply's result changed its input: %+v", in)
	}
}

func TestCommandRoundTrip(t *testing.T) {
	cmds := []Command{
		{Op: OpInit, Cluster: "c1", At: t0},
		{Op: OpSetPrimary, Epoch: 7, Primary: "db-1", At: t0, Reason: "planned"},
		{Op: OpUpsertMember, Member: &Member{ID: "db-3", RaftAddr: "a:1", MySQLAddr: "a:3306", AdminAddr: "a:8080", Voter: true}},
		{Op: OpRequestSwitchover, Switchover: &Switchover{To: "db-2", RequestedAt: t0}},
		start(slot1, 1, "db-1"),
		end(OpBackupDone, slot1, 1, "db-1", "b1"),
		end(OpBackupFailed, slot2, 2, "db-2", ""),
	}
	for _, c := range cmds {
		b, err := c.Encode()
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeCommand(b)
		if err != nil {
			t.Fatalf("DecodeCommand(%s): %v", b, err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Errorf("round trip: got %+v, want %+v", got, c)
		}
	}
}

func TestDecodeCommandRefuses(t *testing.T) {
	for _, in := range []string{
		``,
		`{`,
		`{"op":"init","unknown":1}`,
		`{"op":"init"} {"op":"init"}`,
		`{"op":"init"} x`,
		`{"epoch":-1}`,
		`[]`,
	} {
		if _, err := DecodeCommand([]byte(in)); !errors.Is(err, ErrInvalidCommand) {
			t.Errorf("DecodeCommand(%q) = %v, want ErrInvalidCommand", in, err)
		}
	}
}

func TestRecordRoundTrip(t *testing.T) {
	r := base()
	r.Paused = true
	r.Switchover = &Switchover{To: "db-1", RequestedAt: t0}
	r.LastReason = "because"
	b, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, r) {
		t.Errorf("round trip: got %+v, want %+v", got, r)
	}
	if _, err := DecodeRecord([]byte(`{"cluster":"c","from_the_future":true}`)); err == nil ||
		!strings.Contains(err.Error(), "from_the_future") {
		t.Errorf("DecodeRecord accepted an unknown field: %v", err)
	}
}

func TestMemberIDsSorted(t *testing.T) {
	if got, want := base().MemberIDs(), []string{"db-0", "db-1", "db-2"}; !reflect.DeepEqual(got, want) {
		t.Errorf("MemberIDs = %v, want %v", got, want)
	}
}

func encode(t *testing.T, r Record) string {
	t.Helper()
	b, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
