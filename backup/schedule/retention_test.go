package schedule

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestRetain(t *testing.T) {
	day := 24 * time.Hour
	// valid ended days ago; incomplete started hours ago.
	valid := func(id string, days int) Backup {
		end := now.Add(-time.Duration(days) * day)
		return Backup{ID: id, Member: "db-1", Job: "job-" + id, Start: end.Add(-time.Hour), End: end, Valid: true}
	}
	incomplete := func(id string, hours int) Backup {
		return Backup{ID: id, Member: "db-2", Job: "job-" + id, Start: now.Add(-time.Duration(hours) * time.Hour)}
	}
	week := []Backup{valid("d1", 1), valid("d2", 2), valid("d3", 3), valid("d4", 4), valid("d5", 5), valid("d6", 6), valid("d7", 7)}
	tests := []struct {
		name    string
		backups []Backup
		running []string
		r       Retention
		want    []string // deleted ids
		reason  string   // part of the first deletion's reason
	}{
		{"no limits delete no valid backup", week, nil, Retention{}, nil, ""},
		{"keep the newest by count", week, nil, Retention{KeepCount: 3}, []string{"d4", "d5", "d6", "d7"}, "not among the 3 newest"},
		{"keep by age", week, nil, Retention{KeepAge: 3*day + time.Hour}, []string{"d4", "d5", "d6", "d7"}, "older than 73h0m0s"},
		{"count and age keep what either keeps", week, nil, Retention{KeepCount: 2, KeepAge: 4*day + time.Hour},
			[]string{"d5", "d6", "d7"}, "not among the 2 newest, older than 97h0m0s"},
		{"the newest valid backup is kept whatever its age", week, nil, Retention{KeepAge: time.Hour}, []string{"d2", "d3", "d4", "d5", "d6", "d7"}, ""},
		{"the newest valid backup is kept although newer ones are incomplete",
			[]Backup{valid("old", 30), incomplete("new", 1)}, nil, Retention{KeepCount: 1, KeepAge: time.Hour, IncompleteGrace: 12 * time.Hour}, nil, ""},
		{"newest by end time, not by id or listing order", []Backup{valid("z", 3), valid("a", 1), valid("m", 2)}, nil, Retention{KeepCount: 1},
			[]string{"m", "z"}, ""},
		{"a backup whose job runs is kept", week, []string{"job-d6"}, Retention{KeepCount: 3}, []string{"d4", "d5", "d7"}, ""},
		{"incomplete uploads past the grace are cleaned",
			[]Backup{valid("d1", 1), incomplete("i1", 1), incomplete("i30", 30)}, nil, Retention{IncompleteGrace: 12 * time.Hour},
			[]string{"i30"}, "incomplete upload started 2026-11-29T04:20:00Z, longer ago than the grace of 12h0m0s"},
		{"deletions come in id order",
			[]Backup{valid("z-new", 1), valid("a-old", 9), incomplete("m-inc", 30)}, nil, Retention{KeepCount: 1, IncompleteGrace: 12 * time.Hour},
			[]string{"a-old", "m-inc"}, "not among the 1 newest"},
		{"an incomplete upload whose job runs is kept past the grace",
			[]Backup{incomplete("i30", 30)}, []string{"job-i30"}, Retention{IncompleteGrace: 12 * time.Hour}, nil, ""},
		{"an incomplete upload taken by hand is cleaned past the grace",
			[]Backup{{ID: "manual", Start: now.Add(-48 * time.Hour)}}, []string{""}, Retention{IncompleteGrace: time.Hour}, []string{"manual"}, ""},
		{"no grace keeps incomplete uploads", []Backup{incomplete("i30", 30)}, nil, Retention{KeepCount: 1}, nil, ""},
		{"the point-in-time window keeps its base and everything after",
			week, nil, Retention{KeepCount: 1, RestorableSince: now.Add(-4*day - time.Hour)}, []string{"d6", "d7"},
			"older than the point-in-time window's base"},
		{"a window starting exactly at a backup's end keeps that backup as its base",
			week, nil, Retention{KeepCount: 1, RestorableSince: now.Add(-4 * day)}, []string{"d5", "d6", "d7"}, ""},
		{"a window older than every backup keeps them all",
			week, nil, Retention{KeepCount: 1, RestorableSince: now.Add(-30 * day)}, nil, ""},
		{"empty catalog", nil, nil, Retention{KeepCount: 1, IncompleteGrace: time.Hour}, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			running := map[string]bool{}
			for _, j := range tt.running {
				running[j] = true
			}
			got := Retain(now, tt.backups, running, tt.r)
			var ids []string
			for _, d := range got {
				ids = append(ids, d.ID)
				if d.Reason == "" {
					t.Errorf("deleting %s without a reason", d.ID)
				}
			}
			if fmt.Sprint(ids) != fmt.Sprint(tt.want) {
				t.Errorf("deleted %v, want %v", ids, tt.want)
			}
			if tt.reason != "" && (len(got) == 0 || !strings.Contains(got[0].Reason, tt.reason)) {
				t.Errorf("reasons %+v, want the first to say %q", got, tt.reason)
			}
		})
	}
}
