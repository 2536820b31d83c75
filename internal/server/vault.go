package server

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"warden/internal/capability"
	"warden/internal/config"
	"warden/internal/events"
	"warden/internal/secrets"
	"warden/internal/store"
)

// sweepEvery is how often retired secret versions are destroyed and
// expired KV keys removed.
const sweepEvery = time.Minute

// keyring loads the master keys: the operator's file or environment, or
// else the managed key directory in the data dir (generated on first start,
// with a warning). dir is nil for operator-supplied keys.
func keyring(cfg config.Config, log *slog.Logger) (kr *secrets.Keyring, dir *secrets.KeyDir, generated bool, err error) {
	var cur, prev []byte
	defer func() { clear(cur); clear(prev) }()
	switch {
	case cfg.MasterKeyFile != "":
		if cur, err = secrets.ReadMasterKey(cfg.MasterKeyFile); err != nil {
			return nil, nil, false, fmt.Errorf("--master-key-file: %w", err)
		}
		if cfg.PreviousMasterKeyFile != "" {
			if prev, err = secrets.ReadMasterKey(cfg.PreviousMasterKeyFile); err != nil {
				return nil, nil, false, fmt.Errorf("--previous-master-key-file: %w", err)
			}
		}
	case os.Getenv(config.MasterKeyEnv) != "":
		if cur, err = secrets.MasterKeyFromEnv(config.MasterKeyEnv); err != nil {
			return nil, nil, false, fmt.Errorf("%s: %w", config.MasterKeyEnv, err)
		}
		if os.Getenv(config.PreviousMasterKeyEnv) != "" {
			if prev, err = secrets.MasterKeyFromEnv(config.PreviousMasterKeyEnv); err != nil {
				return nil, nil, false, fmt.Errorf("%s: %w", config.PreviousMasterKeyEnv, err)
			}
		}
	default:
		kd, created, err := secrets.OpenKeyDir(cfg.KeyDir())
		if err != nil {
			return nil, nil, false, fmt.Errorf("master key directory: %w", err)
		}
		if created {
			log.Warn("generated a master key in the data directory; anyone who can read it can decrypt every secret. For production give --master-key-file or " + config.MasterKeyEnv)
		} else {
			log.Warn("the master key is kept in the data directory (development mode); for production give --master-key-file or " + config.MasterKeyEnv)
		}
		return kd.Keyring(), kd, created, nil
	}
	if prev != nil {
		kr, err = secrets.ExternalKeyring(cur, prev)
	} else {
		kr, err = secrets.ExternalKeyring(cur)
	}
	if err != nil {
		return nil, nil, false, fmt.Errorf("master key: %w", err)
	}
	return kr, nil, false, nil
}

// sweep destroys retired secret versions and expired KV keys until ctx ends.
func (s *Server) sweep(ctx context.Context) {
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	for {
		s.sweepOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Server) sweepOnce(ctx context.Context) {
	destroyed, expired, err := s.vault.Sweep(ctx)
	if err != nil && ctx.Err() == nil {
		s.log.Error("sweep of retired secrets and expired keys failed", "err", err)
	}
	for _, d := range destroyed {
		s.events.Emit(events.Event{Type: capability.TypeSecretDestroy, Outcome: events.OutcomeSuccess, Actor: "system",
			Reason: "grace period ended", Namespace: d.Namespace,
			Labels: map[string]string{"secret": d.Name, "secret.version": fmt.Sprint(d.Version)}})
	}
	if expired > 0 {
		s.log.Debug("expired KV keys removed", "count", expired)
	}
	s.pruneEvents(ctx)
}

// pruneEvents applies event retention: by age per class, then by total
// size. The store writes each pruning's events.prune record (counts and id
// ranges per class) in the transaction that deletes: content goes, the
// record that it went stays.
func (s *Server) pruneEvents(ctx context.Context) {
	p := store.PrunePolicy{RequestMaxAge: s.cfg.EventsRetention, AuditMaxAge: s.cfg.EventsAuditRetention, MaxBytes: s.cfg.EventsMaxBytes}
	res, err := s.store.PruneEvents(ctx, p)
	if err != nil && ctx.Err() == nil {
		s.log.Error("event retention failed", "err", err, "deleted", res.Deleted())
	}
}
