package backup

import (
	"context"
	"errors"
	"fmt"

	"github.com/shoal-db/shoal/mysqlctl/gtid"
)

// prunable picks the archived files no backup in the store can need: every transaction of
// theirs is in the oldest valid backup of their flavor (oldest maps a flavor to its GTID
// position), so a replay from any backup skips them whole. A flavor without a valid backup
// keeps all its files.
func prunable(oldest map[gtid.Flavor]gtid.Set, files []*BinlogManifest) []*BinlogManifest {
	var out []*BinlogManifest
	for _, f := range files {
		if pos, ok := oldest[f.Flavor]; ok && covers(f.Flavor, pos, f.after()) {
			out = append(out, f)
		}
	}
	return out
}

// PruneBinlogs deletes the archived binlog files that no valid backup needs (see prunable),
// each manifest first so a file is never listed without its object. Run it after retention
// deleted backups: the files before the oldest kept backup go with them. It returns what it
// deleted.
func (c Catalog) PruneBinlogs(ctx context.Context) ([]*BinlogManifest, error) {
	entries, err := c.List(ctx)
	if err != nil {
		return nil, err
	}
	oldest := map[gtid.Flavor]gtid.Set{}
	for _, e := range entries {
		if m := e.Manifest; e.Valid && m != nil {
			if _, seen := oldest[m.Flavor]; !seen {
				pos, err := gtid.Parse(m.Flavor, m.GTIDExecuted)
				if err != nil {
					return nil, fmt.Errorf("backup %s: %w", m.ID, err)
				}
				oldest[m.Flavor] = pos
			}
		}
	}
	files, err := c.ListBinlogs(ctx)
	if err != nil {
		return nil, err
	}
	var done []*BinlogManifest
	var errs []error
	for _, f := range prunable(oldest, files) {
		if err := c.Store.Remove(ctx, f.manifestKey()); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := c.Store.Remove(ctx, f.ObjectKey()); err != nil {
			errs = append(errs, err)
		}
		done = append(done, f)
	}
	if err := errors.Join(errs...); err != nil {
		return done, fmt.Errorf("prune archived binlogs: %w", err)
	}
	return done, nil
}
