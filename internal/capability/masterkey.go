package capability

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"

	"warden/internal/events"
	"warden/internal/secrets"
)

// Master-key errors.
var (
	ErrExternalKey     = errors.New("the master key is supplied by the operator (--master-key-file or the environment): rotate it by restarting with the new key and --previous-master-key-file")
	ErrRotationRunning = errors.New("a master-key re-wrap is already running")
	ErrKeyNotLoaded    = errors.New("master key not loaded")
)

// TypeRewrap is the event of a finished (success) or failed re-wrap.
const TypeRewrap = "masterkey.rewrap"

// KeyStatus describes the master keys and what they wrap.
type KeyStatus struct {
	Current    string     `json:"current"`
	Source     string     `json:"source"` // "managed" (keys in the data dir) or "external"
	Keys       []KeyCount `json:"keys"`
	Rewrapping bool       `json:"rewrapping"`
	LastError  string     `json:"lastError,omitempty"`
}

// KeyCount is how many sealed values a key wraps.
type KeyCount struct {
	ID     string `json:"id"`
	Values int    `json:"values"`
	Loaded bool   `json:"loaded"`
}

// KeyManager owns master-key rotation: it swaps the vault's keyring and
// re-wraps every data key in the background while the vault keeps serving.
//
// # Notes
//   - With a managed key directory (the default), Rotate generates a new
//     key, makes it current, re-wraps, and then retires the old keys that
//     no longer wrap anything. With external keys the operator restarts with
//     the new key and the previous one; Start re-wraps.
//   - A crash at any point loses nothing: every value is under a key that
//     is still loaded (the old key is retired only once no value uses it),
//     and the next Start resumes the re-wrap.
type KeyManager struct {
	vault *Vault
	dir   *secrets.KeyDir // nil: external keys
	ev    events.Emitter
	log   *slog.Logger

	ctx    context.Context // ends at Close: a running re-wrap stops after its batch
	cancel context.CancelFunc

	mu      sync.Mutex
	running bool
	lastErr string
	done    chan struct{}
}

// NewKeyManager returns a manager for v's keyring; dir is the managed key
// directory, or nil when keys are external.
func NewKeyManager(v *Vault, dir *secrets.KeyDir, ev events.Emitter, log *slog.Logger) *KeyManager {
	if ev == nil {
		ev = events.Discard
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &KeyManager{vault: v, dir: dir, ev: ev, log: log}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	return m
}

// Close stops a running re-wrap after its current batch (each is one
// transaction; the next start resumes) and waits for it.
func (m *KeyManager) Close() {
	m.cancel()
	m.Wait()
}

// Start re-wraps in the background if any value is under a key other than
// the current one (an interrupted rotation, or an external key change).
//
// It fails with an error wrapping ErrKeyNotLoaded when stored values are
// sealed under a key the keyring does not hold: serving then would answer
// every read of those values with an error, and a server that generated a
// fresh key in place of a lost one would go on sealing new values under it.
func (m *KeyManager) Start(ctx context.Context) error {
	ids, err := m.vault.st.SealedKeyIDs(ctx)
	if err != nil {
		return err
	}
	kr := m.vault.Keyring()
	need := false
	var missing []string
	for _, id := range slices.Sorted(maps.Keys(ids)) {
		n := ids[id]
		if n == 0 || id == kr.Current().KeyID() {
			continue
		}
		if _, ok := kr.Provider(id); !ok {
			missing = append(missing, fmt.Sprintf("%d under %s", n, id))
			continue
		}
		need = true
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: stored values are sealed under master keys that are not loaded (%s); give the key that wraps them (--master-key-file, or --previous-master-key-file while rotating)",
			ErrKeyNotLoaded, strings.Join(missing, ", "))
	}
	if need || m.dir != nil && len(kr.IDs()) > 1 {
		m.startRewrap()
	}
	return nil
}

// Rotate makes a new managed master key current and starts the re-wrap.
func (m *KeyManager) Rotate(ctx context.Context) (KeyStatus, error) {
	if m.dir == nil {
		return KeyStatus{}, ErrExternalKey
	}
	m.mu.Lock()
	if m.running {
		m.mu.Unlock()
		return KeyStatus{}, ErrRotationRunning
	}
	kr, err := m.dir.Rotate()
	if err != nil {
		m.mu.Unlock()
		return KeyStatus{}, err
	}
	m.vault.SetKeyring(kr)
	m.mu.Unlock()
	m.startRewrap()
	return m.Status(ctx)
}

func (m *KeyManager) startRewrap() {
	m.mu.Lock()
	if m.running {
		m.mu.Unlock()
		return
	}
	m.running = true
	m.done = make(chan struct{})
	done := m.done
	m.mu.Unlock()
	go func() {
		defer close(done)
		err := m.rewrap(m.ctx)
		m.mu.Lock()
		m.running = false
		m.lastErr = ""
		if err != nil {
			m.lastErr = err.Error()
		}
		m.mu.Unlock()
	}()
}

func (m *KeyManager) rewrap(ctx context.Context) error {
	kr := m.vault.Keyring()
	n, err := m.vault.Rewrap(ctx)
	ev := events.Event{Type: TypeRewrap, Outcome: events.OutcomeSuccess,
		Labels: map[string]string{"key.id": kr.Current().KeyID(), "rewrapped": strconv.Itoa(n)}}
	if err != nil && m.ctx.Err() != nil {
		m.log.Info("master-key re-wrap paused for shutdown; the next start resumes it", slog.Int("rewrapped", n))
		return nil
	}
	if err != nil {
		ev.Outcome, ev.Reason = events.OutcomeFailure, "re-wrap failed"
		m.ev.Emit(ev)
		m.log.Error("master-key re-wrap failed", slog.Int("rewrapped", n), slog.String("error", err.Error()))
		return err
	}
	m.log.Info("master-key re-wrap finished", slog.String("key_id", kr.Current().KeyID()), slog.Int("rewrapped", n))
	if m.dir != nil {
		ids, err := m.vault.st.SealedKeyIDs(ctx)
		if err != nil {
			return err
		}
		for _, id := range kr.IDs() {
			if id == kr.Current().KeyID() || ids[id] > 0 {
				continue
			}
			if err := m.dir.Retire(id); err != nil {
				m.log.Warn("could not retire an old master key", slog.String("key_id", id), slog.String("error", err.Error()))
				continue
			}
			ev.Labels["retired"] = id
		}
		m.vault.SetKeyring(m.dir.Keyring())
	}
	m.ev.Emit(ev)
	return nil
}

// Wait blocks until a running re-wrap ends.
func (m *KeyManager) Wait() {
	m.mu.Lock()
	done := m.done
	m.mu.Unlock()
	if done != nil {
		<-done
	}
}

// Status reports the keys and the values each one wraps.
func (m *KeyManager) Status(ctx context.Context) (KeyStatus, error) {
	ids, err := m.vault.st.SealedKeyIDs(ctx)
	if err != nil {
		return KeyStatus{}, err
	}
	kr := m.vault.Keyring()
	st := KeyStatus{Current: kr.Current().KeyID(), Source: "external"}
	if m.dir != nil {
		st.Source = "managed"
	}
	seen := map[string]bool{}
	for _, id := range kr.IDs() {
		seen[id] = true
		st.Keys = append(st.Keys, KeyCount{ID: id, Values: ids[id], Loaded: true})
	}
	for _, id := range slices.Sorted(maps.Keys(ids)) {
		if !seen[id] && ids[id] > 0 {
			st.Keys = append(st.Keys, KeyCount{ID: id, Values: ids[id]})
		}
	}
	m.mu.Lock()
	st.Rewrapping, st.LastError = m.running, m.lastErr
	m.mu.Unlock()
	return st, nil
}
