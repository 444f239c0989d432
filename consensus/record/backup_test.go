package record

import (
	"reflect"
	"testing"
	"time"
)

var slot1, slot2 = t0.Truncate(time.Hour), t0.Truncate(time.Hour).Add(time.Hour)

// withJobs is base() with jobs recorded.
func withJobs(jobs ...BackupJob) Record {
	r := base()
	r.BackupJobs = jobs
	return r
}

func job(slot time.Time, attempt int, member string, state JobState) BackupJob {
	return BackupJob{Slot: slot, Attempt: attempt, Member: member, State: state, StartedAt: slot}
}

func start(slot time.Time, attempt int, member string) Command {
	return Command{Op: OpBackupStart, Job: &BackupJob{Slot: slot, Attempt: attempt, Member: member}, At: slot, Reason: "due"}
}

func end(op Op, slot time.Time, attempt int, member, id string) Command {
	return Command{Op: op, Job: &BackupJob{Slot: slot, Attempt: attempt, Member: member, BackupID: id}, At: slot.Add(time.Minute), Reason: "ended"}
}

func TestApplyBackupJobs(t *testing.T) {
	running := func(slot time.Time, attempt int, member string) BackupJob {
		j := job(slot, attempt, member, JobRunning)
		j.Reason = "due"
		return j
	}
	ended := func(j BackupJob, state JobState, id string) BackupJob {
		j.State, j.EndedAt, j.BackupID, j.Reason = state, j.Slot.Add(time.Minute), id, "ended"
		return j
	}
	paused := withJobs()
	paused.Paused = true
	runApplyCases(t, []applyCase{
		{"first job of a record", base(), start(slot1, 1, "db-1"), withJobs(running(slot1, 1, "db-1")), nil},
		{"a newer slot", withJobs(job(slot1, 1, "db-1", JobDone)), start(slot2, 1, "db-2"),
			withJobs(job(slot1, 1, "db-1", JobDone), running(slot2, 1, "db-2")), nil},
		{"the same slot again is refused", withJobs(job(slot1, 1, "db-1", JobDone)), start(slot1, 1, "db-2"),
			withJobs(job(slot1, 1, "db-1", JobDone)), ErrJobConflict},
		{"an older slot is refused", withJobs(job(slot2, 1, "db-1", JobDone)), start(slot1, 1, "db-2"),
			withJobs(job(slot2, 1, "db-1", JobDone)), ErrJobConflict},
		{"a member running a job gets no other", withJobs(job(slot1, 1, "db-1", JobRunning)), start(slot2, 1, "db-1"),
			withJobs(job(slot1, 1, "db-1", JobRunning)), ErrJobConflict},
		{"a member whose job ended may take another", withJobs(job(slot1, 1, "db-1", JobDone)), start(slot2, 1, "db-1"),
			withJobs(job(slot1, 1, "db-1", JobDone), running(slot2, 1, "db-1")), nil},
		{"another member may start while one runs", withJobs(job(slot1, 1, "db-1", JobRunning)), start(slot2, 1, "db-2"),
			withJobs(job(slot1, 1, "db-1", JobRunning), running(slot2, 1, "db-2")), nil},
		{"a non-member is refused", base(), start(slot1, 1, "db-9"), base(), ErrInvalidCommand},
		{"no start while paused", paused, start(slot1, 1, "db-1"), paused, ErrInvalidCommand},
		{"no job", base(), Command{Op: OpBackupStart}, base(), ErrInvalidCommand},
		{"no slot", base(), Command{Op: OpBackupStart, Job: &BackupJob{Attempt: 1, Member: "db-1"}}, base(), ErrInvalidCommand},
		{"no member", base(), Command{Op: OpBackupFailed, Job: &BackupJob{Slot: slot1, Attempt: 1}}, base(), ErrInvalidCommand},
		{"attempt 0", base(), start(slot1, 0, "db-1"), base(), ErrInvalidCommand},
		{"attempt 3", withJobs(job(slot1, 1, "db-1", JobFailed), job(slot1, 2, "db-2", JobFailed)), start(slot1, 3, "db-0"),
			withJobs(job(slot1, 1, "db-1", JobFailed), job(slot1, 2, "db-2", JobFailed)), ErrInvalidCommand},
		{"retry of a failed slot on another member", withJobs(job(slot1, 1, "db-1", JobFailed)), start(slot1, 2, "db-2"),
			withJobs(job(slot1, 1, "db-1", JobFailed), running(slot1, 2, "db-2")), nil},
		{"retry on the member that failed", withJobs(job(slot1, 1, "db-1", JobFailed)), start(slot1, 2, "db-1"),
			withJobs(job(slot1, 1, "db-1", JobFailed)), ErrInvalidCommand},
		{"retry of a running job", withJobs(job(slot1, 1, "db-1", JobRunning)), start(slot1, 2, "db-2"),
			withJobs(job(slot1, 1, "db-1", JobRunning)), ErrJobConflict},
		{"retry of a done job", withJobs(job(slot1, 1, "db-1", JobDone)), start(slot1, 2, "db-2"),
			withJobs(job(slot1, 1, "db-1", JobDone)), ErrJobConflict},
		{"second retry", withJobs(job(slot1, 1, "db-1", JobFailed), job(slot1, 2, "db-2", JobFailed)), start(slot1, 2, "db-0"),
			withJobs(job(slot1, 1, "db-1", JobFailed), job(slot1, 2, "db-2", JobFailed)), ErrJobConflict},
		{"retry of an unrecorded slot", base(), start(slot1, 2, "db-2"), base(), ErrJobConflict},
		{"retry of a superseded slot", withJobs(job(slot1, 1, "db-1", JobFailed), job(slot2, 1, "db-2", JobRunning)), start(slot1, 2, "db-0"),
			withJobs(job(slot1, 1, "db-1", JobFailed), job(slot2, 1, "db-2", JobRunning)), ErrJobConflict},
		{"done", withJobs(running(slot1, 1, "db-1")), end(OpBackupDone, slot1, 1, "db-1", "b1"),
			withJobs(ended(running(slot1, 1, "db-1"), JobDone, "b1")), nil},
		{"done twice", withJobs(job(slot1, 1, "db-1", JobDone)), end(OpBackupDone, slot1, 1, "db-1", "b1"),
			withJobs(job(slot1, 1, "db-1", JobDone)), ErrJobConflict},
		{"done without a backup id", withJobs(running(slot1, 1, "db-1")), end(OpBackupDone, slot1, 1, "db-1", ""),
			withJobs(running(slot1, 1, "db-1")), ErrInvalidCommand},
		{"done by another member", withJobs(running(slot1, 1, "db-1")), end(OpBackupDone, slot1, 1, "db-2", "b1"),
			withJobs(running(slot1, 1, "db-1")), ErrJobConflict},
		{"done of an unknown job", withJobs(running(slot1, 1, "db-1")), end(OpBackupDone, slot2, 1, "db-1", "b1"),
			withJobs(running(slot1, 1, "db-1")), ErrJobConflict},
		{"failed", withJobs(running(slot1, 1, "db-1")), end(OpBackupFailed, slot1, 1, "db-1", ""),
			withJobs(ended(running(slot1, 1, "db-1"), JobFailed, "")), nil},
		{"done after failed is refused", withJobs(job(slot1, 1, "db-1", JobFailed)), end(OpBackupDone, slot1, 1, "db-1", "b1"),
			withJobs(job(slot1, 1, "db-1", JobFailed)), ErrJobConflict},
		{"ending a job while paused", func() Record { r := withJobs(running(slot1, 1, "db-1")); r.Paused = true; return r }(),
			end(OpBackupFailed, slot1, 1, "db-1", ""),
			func() Record {
				r := withJobs(ended(running(slot1, 1, "db-1"), JobFailed, ""))
				r.Paused = true
				return r
			}(), nil},
	})
}

// The history stays bounded, and pruning never drops the newest slot or a running job.
func TestBackupJobsBounded(t *testing.T) {
	// db-0's job, the first, runs throughout; db-1 and db-2 take turns at the others.
	r, err := Apply(base(), start(slot1, 1, "db-0"))
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < 3*MaxBackupJobs; i++ {
		slot := slot1.Add(time.Duration(i) * time.Hour)
		m, op := "db-1", OpBackupDone
		if i%2 == 0 {
			m, op = "db-2", OpBackupFailed
		}
		if r, err = Apply(r, start(slot, 1, m)); err != nil {
			t.Fatal(err)
		}
		if r, err = Apply(r, end(op, slot, 1, m, "b")); err != nil {
			t.Fatal(err)
		}
	}
	if len(r.BackupJobs) != MaxBackupJobs {
		t.Fatalf("%d jobs kept, want %d", len(r.BackupJobs), MaxBackupJobs)
	}
	if first := r.BackupJobs[0]; first.State != JobRunning || !first.Slot.Equal(slot1) {
		t.Errorf("the running job was pruned: oldest kept is %+v", first)
	}
	if got, want := r.NewestBackupSlot(), slot1.Add(time.Duration(3*MaxBackupJobs-1)*time.Hour); !got.Equal(want) {
		t.Errorf("newest slot %s, want %s", got, want)
	}
	for i := 1; i < len(r.BackupJobs); i++ {
		if !r.BackupJobs[i-1].Slot.Before(r.BackupJobs[i].Slot) {
			t.Fatalf("jobs out of order at %d: %+v", i, r.BackupJobs)
		}
	}
}

func TestBackupJobID(t *testing.T) {
	j := BackupJob{Slot: time.Date(2026, 11, 30, 3, 0, 0, 0, time.FixedZone("CET", 3600)), Attempt: 2}
	if got, want := j.ID(), "20261130T020000Z-2"; got != want {
		t.Errorf("ID = %q, want %q", got, want)
	}
}

// A record written before backup jobs existed decodes, and one with jobs round-trips.
func TestRecordWithBackupJobsCodec(t *testing.T) {
	old := `{"cluster":"c1","epoch":4,"primary":"db-0","members":{"db-0":{"id":"db-0","raft_addr":"a","mysql_addr":"","admin_addr":"","voter":true}},"last_primary_change":"2025-01-02T03:04:05Z"}`
	r, err := DecodeRecord([]byte(old))
	if err != nil {
		t.Fatalf("a record without jobs: %v", err)
	}
	if r.BackupJobs != nil || r.Primary != "db-0" {
		t.Errorf("decoded %+v", r)
	}
	if b := encode(t, r); b != old {
		t.Errorf("a record without jobs encodes differently:\n%s\n%s", b, old)
	}
	withJob := withJobs(job(slot1, 1, "db-1", JobFailed), BackupJob{Slot: slot1, Attempt: 2, Member: "db-2", State: JobDone,
		StartedAt: slot1, EndedAt: slot2, BackupID: "b1", Reason: "retry"})
	got, err := DecodeRecord([]byte(encode(t, withJob)))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, withJob) {
		t.Errorf("round trip: got %+v, want %+v", got.BackupJobs, withJob.BackupJobs)
	}
}
