// Package schedule decides the cluster's scheduled backups: which slot of a cron schedule is
// due, which member takes it, when a job has failed and is retried, and which backups retention
// deletes. It is pure: the Raft leader gathers an Observation, and proposes the Actions as
// record commands; the record's compare-and-set on the jobs keeps one job per slot.
package schedule

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Spec is a parsed cron schedule: five fields (minute hour day-of-month month day-of-week) or a
// descriptor (@hourly, @daily, @weekly, @monthly, @yearly), in UTC unless it starts with
// CRON_TZ=Zone. The zero Spec schedules nothing.
type Spec struct {
	text  string
	sched cron.Schedule
}

// parser is robfig/cron's standard syntax: minutes are the finest slots, which a backup never
// needs finer.
var parser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseSpec reads a schedule. It refuses @every, whose times depend on when it is asked rather
// than on the calendar, so two leaders would not agree on a slot; and a schedule that never
// fires (say 30 February).
func ParseSpec(text string) (Spec, error) {
	spec := strings.TrimSpace(text)
	if spec == "" {
		return Spec{}, errors.New("backup schedule: empty")
	}
	zone := "UTC"
	if rest, ok := strings.CutPrefix(spec, "CRON_TZ="); ok {
		var found bool
		zone, spec, found = strings.Cut(rest, " ")
		if !found || zone == "" || zone == "Local" {
			return Spec{}, fmt.Errorf("backup schedule %q: want CRON_TZ=Zone (not Local: members' local zones may differ) followed by the schedule", text)
		}
		spec = strings.TrimSpace(spec)
	}
	if strings.HasPrefix(spec, "@every") {
		return Spec{}, fmt.Errorf("backup schedule %q: @every is not a calendar schedule; use fields such as \"0 */6 * * *\"", text)
	}
	if strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=") {
		return Spec{}, fmt.Errorf("backup schedule %q: give the zone once, first, as CRON_TZ=Zone", text)
	}
	sched, err := parser.Parse("CRON_TZ=" + zone + " " + spec)
	if err != nil {
		return Spec{}, fmt.Errorf("backup schedule %q: %w", text, err)
	}
	// robfig looks five years ahead; every valid calendar date recurs within that.
	if sched.Next(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)).IsZero() {
		return Spec{}, fmt.Errorf("backup schedule %q: never fires", text)
	}
	return Spec{text: text, sched: sched}, nil
}

// IsZero reports whether the spec schedules nothing.
func (s Spec) IsZero() bool { return s.sched == nil }

func (s Spec) String() string { return s.text }

// Next is the first slot after t; zero for the zero Spec.
func (s Spec) Next(t time.Time) time.Time {
	if s.sched == nil {
		return time.Time{}
	}
	return s.sched.Next(t).UTC()
}

// maxLookback bounds how far back Latest looks: robfig's own horizon, within which every valid
// calendar date recurs.
const maxLookback = 5 * 366 * 24 * time.Hour

// Latest is the newest slot at or before now, in UTC, and whether there is one.
func (s Spec) Latest(now time.Time) (time.Time, bool) {
	if s.sched == nil {
		return time.Time{}, false
	}
	// due(t): the first slot after t is at or before now. It holds for every t below the latest
	// slot and for none at or above it, so a search finds that slot.
	due := func(t time.Time) bool { n := s.sched.Next(t); return !n.IsZero() && !n.After(now) }
	lo := time.Time{}
	for back := time.Minute; lo.IsZero(); back *= 2 {
		back = min(back, maxLookback)
		if t := now.Add(-back); due(t) {
			lo = t
		} else if back == maxLookback {
			return time.Time{}, false
		}
	}
	// Slots are whole seconds: once lo and hi are a second apart, the slot after lo is the latest.
	hi := now
	for hi.Sub(lo) > time.Second {
		mid := lo.Add(hi.Sub(lo) / 2)
		if due(mid) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return s.sched.Next(lo).UTC(), true
}
