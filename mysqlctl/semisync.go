package mysqlctl

import (
	"context"
	"fmt"
	"time"
)

// semiSyncNeverTimeout is the largest timeout both flavors accept (about 49 days): a primary that
// loses all its acking replicas blocks commits instead of silently falling back to async, which
// would make acknowledged writes losable on failover.
const semiSyncNeverTimeout = 4294967295 * time.Millisecond

// SemiSyncConfig is the primary's durability contract. The zero value is lossless semi-sync with
// one acknowledging replica, the default shoal promises; Async is an explicit opt-out.
type SemiSyncConfig struct {
	// Async turns semi-sync off: commits return before any replica has the transaction.
	Async bool
	// Acks is how many replicas must have received a transaction before its commit returns
	// (default 1). MariaDB always waits for exactly one.
	Acks int
}

// ConfigureSemiSync sets the server up as a semi-sync source per cfg: AFTER_SYNC (the transaction
// is not visible to anyone until a replica has it), the ack count, and a timeout so large that it
// never degrades to async. It also turns the replica side off, since a primary acks to no one.
func (s *Server) ConfigureSemiSync(ctx context.Context, cfg SemiSyncConfig) error {
	if cfg.Acks <= 0 {
		cfg.Acks = 1
	}
	d := s.dialect
	if cfg.Acks > 1 && d.semiAckCountVar == "" {
		return fmt.Errorf("mysql %s: %w: %s waits for exactly one semi-sync ack, %d requested",
			s.addr, ErrUnsupported, s.flavor, cfg.Acks)
	}
	if err := s.ensureSemiSyncPlugins(ctx); err != nil {
		return err
	}
	if err := s.setGlobal(ctx, d.semiReplica+"enabled", "OFF"); err != nil {
		return err
	}
	if cfg.Async {
		return s.setGlobal(ctx, d.semiSource+"enabled", "OFF")
	}
	type setting struct {
		name  string
		value any
	}
	settings := []setting{
		{d.semiSource + "wait_point", "AFTER_SYNC"},
		{d.semiSource + "timeout", int64(semiSyncNeverTimeout / time.Millisecond)},
		{d.semiWaitNoReplicaVar, "ON"},
	}
	if d.semiAckCountVar != "" {
		settings = append(settings, setting{d.semiAckCountVar, cfg.Acks})
	}
	// Enabled last, so the server never waits under a half-applied contract.
	settings = append(settings, setting{d.semiSource + "enabled", "ON"})
	for _, kv := range settings {
		if err := s.setGlobal(ctx, kv.name, kv.value); err != nil {
			return err
		}
	}
	return nil
}

// setSemiSyncReplica turns the replica's acknowledgement on or off and the source side off (a
// replica with source semi-sync on could stall its applier). Replication must be restarted for it
// to take effect; ConfigureReplica does that.
func (s *Server) setSemiSyncReplica(ctx context.Context, on bool) error {
	if err := s.ensureSemiSyncPlugins(ctx); err != nil {
		if on {
			return err
		}
		return nil // nothing to turn off
	}
	d := s.dialect
	if err := s.setGlobal(ctx, d.semiSource+"enabled", "OFF"); err != nil {
		return err
	}
	value := "OFF"
	if on {
		value = "ON"
		// The server default (5 s) held MariaDB's STOP SLAVE IO_THREAD on a silent source for
		// 2 s, its stop loop's second kick; a failover waits for that stop (the candidate's
		// promotion, every re-pointed replica). A source that answers takes milliseconds.
		if d.semiKillConnTimeoutVar != "" {
			if err := s.setGlobal(ctx, d.semiKillConnTimeoutVar, 1); err != nil {
				return err
			}
		}
	}
	return s.setGlobal(ctx, d.semiReplica+"enabled", value)
}

// ensureSemiSyncPlugins loads the semi-sync plugins where the flavor needs them and they are not
// loaded (better: load them at server start with plugin-load-add).
func (s *Server) ensureSemiSyncPlugins(ctx context.Context) error {
	for name, lib := range s.dialect.semiPlugins {
		var status string
		err := s.db.QueryRowContext(ctx,
			"SELECT PLUGIN_STATUS FROM information_schema.PLUGINS WHERE PLUGIN_NAME = ?", name).Scan(&status)
		if err == nil && status == "ACTIVE" {
			continue
		}
		if _, err := s.db.ExecContext(ctx, "INSTALL PLUGIN "+name+" SONAME ?", lib); err != nil {
			return fmt.Errorf("mysql %s: %w: install plugin %s: %w", s.addr, ErrSemiSyncUnavailable, name, err)
		}
	}
	return nil
}

func (s *Server) setGlobal(ctx context.Context, name string, value any) error {
	// Variable names come from the dialect, never from input, so they can be spliced in.
	return s.exec(ctx, fmt.Sprintf("set %s = %v", name, value), "SET GLOBAL "+name+" = ?", value)
}
