package secrets

import (
	"context"
	"fmt"
	"slices"
)

// Keyring is a fixed set of [KeyProvider]s with distinct KeyIDs, one of them
// current. New values are sealed under the current provider; a stored value
// is opened by the provider its [Sealed.KeyID] names. It is the read side of
// master-key rotation: after a new key becomes current, values sealed under
// the previous ones still open until [Keyring.Rewrap] has moved them.
//
// A Keyring is immutable and safe for concurrent use (if its providers are,
// as [KeyProvider] requires). To change the set, build a new one; whoever
// holds the old one keeps a consistent view.
//
// # Notes
//   - Build it with [NewKeyring], [ExternalKeyring] or [KeyDir.Keyring]; the
//     zero Keyring is not usable.
//   - A value naming a KeyID the keyring lacks gives an error wrapping
//     [ErrKeyMismatch] that names the id and nothing else.
//   - Lookup by id adds one map access to [Open]; see BenchmarkKeyringOpen1KiB.
type Keyring struct {
	current KeyProvider
	all     []KeyProvider // current first, then the others in the order given
	byID    map[string]KeyProvider
}

// NewKeyring returns a keyring that seals under current and opens values
// sealed under current or any of others. It fails if a provider is nil, has a
// KeyID that is empty or longer than 255 bytes, or shares its KeyID with
// another. The providers are kept, not copied.
func NewKeyring(current KeyProvider, others ...KeyProvider) (*Keyring, error) {
	all := make([]KeyProvider, 0, 1+len(others))
	all = append(all, current)
	all = append(all, others...)
	byID := make(map[string]KeyProvider, len(all))
	for i, p := range all {
		if p == nil {
			return nil, fmt.Errorf("secrets: keyring provider %d is nil", i)
		}
		id := p.KeyID()
		if id == "" || len(id) > maxKeyID {
			return nil, fmt.Errorf("secrets: keyring provider %d: key id must be 1 to %d bytes, got %d", i, maxKeyID, len(id))
		}
		if _, dup := byID[id]; dup {
			return nil, fmt.Errorf("secrets: keyring: duplicate key id %q", id)
		}
		byID[id] = p
	}
	return &Keyring{current: current, all: all, byID: byID}, nil
}

// Current returns the provider new values are sealed under.
func (k *Keyring) Current() KeyProvider { return k.current }

// Provider returns the provider with keyID, if the keyring holds it.
func (k *Keyring) Provider(keyID string) (KeyProvider, bool) {
	p, ok := k.byID[keyID]
	return p, ok
}

// IDs returns the KeyIDs of the keyring, the current one first. The slice
// is a copy and belongs to the caller.
func (k *Keyring) IDs() []string {
	ids := make([]string, len(k.all))
	for i, p := range k.all {
		ids[i] = p.KeyID()
	}
	return ids
}

// providers returns the keyring's providers, current first. Callers must not
// modify the slice.
func (k *Keyring) providers() []KeyProvider { return k.all }

// Seal seals plaintext under the current provider; see [Seal].
func (k *Keyring) Seal(ctx context.Context, plaintext, aad []byte) (Sealed, error) {
	return Seal(ctx, k.current, plaintext, aad)
}

// Open opens s with the provider its KeyID names; see [Open]. A KeyID the
// keyring lacks gives an error wrapping [ErrKeyMismatch].
func (k *Keyring) Open(ctx context.Context, s Sealed, aad []byte) ([]byte, error) {
	p, err := k.lookup(s)
	if err != nil {
		return nil, err
	}
	return Open(ctx, p, s, aad)
}

// UnwrapDataKey unwraps s's data key with the provider its KeyID names; see
// [UnwrapDataKey]. Errors are those of [Keyring.Open].
func (k *Keyring) UnwrapDataKey(ctx context.Context, s Sealed, aad []byte) (*DataKey, error) {
	p, err := k.lookup(s)
	if err != nil {
		return nil, err
	}
	return UnwrapDataKey(ctx, p, s, aad)
}

// Rewrap moves s to the current key: if s is already under it, s is
// returned unchanged, without being unwrapped (so neither its wrapped key
// nor aad is checked); otherwise its data key is re-wrapped from the
// provider its KeyID names to the current one, as [Rewrap] does. A caller
// re-wrapping stored values writes back only those whose KeyID changed.
// Errors are those of [Rewrap] and [Keyring.Open].
func (k *Keyring) Rewrap(ctx context.Context, s Sealed, aad []byte) (Sealed, error) {
	if err := s.check(); err != nil {
		return Sealed{}, err
	}
	if s.KeyID == k.current.KeyID() {
		return s, nil
	}
	from, err := k.lookup(s)
	if err != nil {
		return Sealed{}, err
	}
	return Rewrap(ctx, from, k.current, s, aad)
}

// lookup checks s's shape (so a malformed value is [ErrMalformed], not an
// unknown key) and returns the provider it names.
func (k *Keyring) lookup(s Sealed) (KeyProvider, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	p, ok := k.byID[s.KeyID]
	if !ok {
		return nil, fmt.Errorf("%w: key %q is not in the keyring", ErrKeyMismatch, s.KeyID)
	}
	return p, nil
}

// ExternalKeyring builds a keyring from master keys the operator supplies
// (for example --master-key-file with --previous-master-key-file, or the
// environment): current seals new values, previous only open old ones until
// they are re-wrapped. Each key becomes a [LocalProvider] named by
// [LocalKeyID], so the ids stored in values follow the key, not the order or
// file it was given in.
//
// Every key must be at least [MasterKeySize] bytes (else an error wrapping
// [ErrMasterKeyShort]), and no key may be given twice. Errors name keys by
// position ("previous master key 2"), never by content. The keys are not
// retained; the caller may clear them once ExternalKeyring returns.
func ExternalKeyring(current []byte, previous ...[]byte) (*Keyring, error) {
	cur, err := NewLocalProviderFromKey(current)
	if err != nil {
		return nil, fmt.Errorf("secrets: current master key: %w", err)
	}
	others := make([]KeyProvider, 0, len(previous))
	for i, key := range previous {
		p, err := NewLocalProviderFromKey(key)
		if err != nil {
			return nil, fmt.Errorf("secrets: previous master key %d: %w", i+1, err)
		}
		if p.KeyID() == cur.KeyID() {
			return nil, fmt.Errorf("secrets: previous master key %d is the same key as the current one", i+1)
		}
		if j := slices.IndexFunc(others, func(o KeyProvider) bool { return o.KeyID() == p.KeyID() }); j >= 0 {
			return nil, fmt.Errorf("secrets: previous master key %d is the same key as previous master key %d", i+1, j+1)
		}
		others = append(others, p)
	}
	return NewKeyring(cur, others...)
}
