package auth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"runtime"
	"sync"
	"time"
	"unicode/utf8"

	"warden/internal/store"
)

// Role names besides RoleAdmin. Which permissions each holds is the admin
// API's table (internal/admin/roles.go).
const (
	RoleDeployer = "deployer"
	RoleAuditor  = "auditor"
	RoleViewer   = "viewer"
)

// MinPasswordLen is the shortest password accepted, in characters.
const MinPasswordLen = 12

// UserNameRE is the user name charset: the same as API key names.
var UserNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// ReservedUserName names the bootstrap token in events; no user may take it.
const ReservedUserName = "bootstrap"

// Lockout defaults: after MaxFailures consecutive failures a user is locked
// for LockBase, doubling with every further failure up to LockMax.
const (
	DefaultMaxFailures = 5
	DefaultLockBase    = time.Minute
	DefaultLockMax     = time.Hour
)

// UserStore is what Users needs from persistence.
type UserStore interface {
	store.Users
	store.Credentials
}

// Users owns operator accounts: password hashing, TOTP enrollment, login
// with lockout, and the sessions logins create. Safe for concurrent use;
// configure the fields before first use and do not change them after.
//
// # Notes
//   - A password, a TOTP secret or code and a session token are never part
//     of an error, a LoginError reason or anything else Users returns,
//     except the token from Login and the URI from StartTOTP, once.
//   - Login costs one argon2id hash whether or not the user exists, and an
//     unknown user is locked out exactly like a known one (tracked in
//     memory), so that neither timing nor answers tell them apart.
//   - At most a few argon2id hashes run at once (each needs
//     PasswordParams.Memory); further logins wait their turn.
type Users struct {
	Store          UserStore
	Now            func() time.Time // default time.Now
	PasswordParams PasswordParams   // zero: DefaultPasswordParams
	SessionTTL     time.Duration    // zero: DefaultSessionTTL
	MaxFailures    int              // zero: DefaultMaxFailures
	LockBase       time.Duration    // zero: DefaultLockBase
	LockMax        time.Duration    // zero: DefaultLockMax
	// RequireMFA reports whether a role must present a TOTP code to log in
	// (and so cannot log in before enrolling). Nil: only RoleAdmin.
	RequireMFA func(role string) bool
	// Seeds encrypts TOTP seeds at rest; nil keeps them as given (tests of
	// this package only: the server always sets it).
	Seeds SeedCipher

	initOnce sync.Once
	dummy    string        // a hash of a random password, verified for unknown users
	sem      chan struct{} // bounds concurrent argon2id work
	mu       sync.Mutex
	ghosts   map[string]ghost // lockout state of names that are not users
}

// SeedCipher seals TOTP seeds for storage and opens them. Both are local
// crypto operations: they never call the store (they run inside
// UpdateUser).
type SeedCipher interface {
	SealTOTP(ctx context.Context, user, seed string) (sealed, keyID string, err error)
	// OpenTOTP returns the seed; a keyID of "" means stored as given.
	OpenTOTP(ctx context.Context, user, stored, keyID string) (string, error)
}

// seal returns what to store for seed.
func (u *Users) seal(ctx context.Context, user, seed string) (string, string, error) {
	if u.Seeds == nil {
		return seed, "", nil
	}
	return u.Seeds.SealTOTP(ctx, user, seed)
}

// seed returns usr's TOTP seed in clear.
func (u *Users) seed(ctx context.Context, usr *store.User) (string, error) {
	if usr.TOTPKeyID == "" || u.Seeds == nil {
		return usr.TOTPSecret, nil
	}
	return u.Seeds.OpenTOTP(ctx, usr.Name, usr.TOTPSecret, usr.TOTPKeyID)
}

// SealSeeds encrypts every TOTP seed still stored as given (written before
// seeds were encrypted) and returns how many it sealed.
func (u *Users) SealSeeds(ctx context.Context) (int, error) {
	if u.Seeds == nil {
		return 0, nil
	}
	list, err := u.Store.ListUsers(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, usr := range list {
		if usr.TOTPSecret == "" || usr.TOTPKeyID != "" {
			continue
		}
		sealed, id, err := u.Seeds.SealTOTP(ctx, usr.Name, usr.TOTPSecret)
		if err != nil {
			return n, err
		}
		_, err = u.Store.UpdateUser(ctx, usr.Name, func(s *store.User) error {
			if s.TOTPKeyID == "" && s.TOTPSecret == usr.TOTPSecret {
				s.TOTPSecret, s.TOTPKeyID = sealed, id
			}
			return nil
		})
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return n, err
		}
		n++
	}
	return n, nil
}

// ghost is the failure record of a name that is not a user.
type ghost struct {
	failures int
	until    time.Time
}

func (u *Users) now() time.Time {
	if u.Now != nil {
		return u.Now()
	}
	return time.Now()
}

func (u *Users) params() PasswordParams {
	if u.PasswordParams == (PasswordParams{}) {
		return DefaultPasswordParams
	}
	return u.PasswordParams
}

func (u *Users) requireMFA(role string) bool {
	if u.RequireMFA != nil {
		return u.RequireMFA(role)
	}
	return role == RoleAdmin
}

func (u *Users) init() error {
	var err error
	u.initOnce.Do(func() {
		u.sem = make(chan struct{}, max(2, min(runtime.GOMAXPROCS(0), 4)))
		var b [24]byte
		if _, err = rand.Read(b[:]); err != nil {
			return
		}
		u.dummy, err = HashPassword(base64.RawURLEncoding.EncodeToString(b[:]), u.params())
	})
	if err == nil && u.dummy == "" {
		err = errors.New("password hashing is not initialised")
	}
	return err
}

// hash and verify run argon2id under the concurrency bound.
func (u *Users) hash(ctx context.Context, password string) (string, error) {
	if err := u.acquire(ctx); err != nil {
		return "", err
	}
	defer func() { <-u.sem }()
	return HashPassword(password, u.params())
}

func (u *Users) verify(ctx context.Context, password, hash string) (bool, error) {
	if err := u.acquire(ctx); err != nil {
		return false, err
	}
	defer func() { <-u.sem }()
	return VerifyPassword(password, hash)
}

func (u *Users) acquire(ctx context.Context) error {
	if err := u.init(); err != nil {
		return err
	}
	select {
	case u.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Sentinel errors of user management. Their texts are safe to show.
var (
	ErrUserInvalid = errors.New("invalid user")
	ErrUserExists  = errors.New("user exists")
	ErrNoSuchUser  = errors.New("no such user")
	ErrMFAEnrolled = errors.New("TOTP is already enrolled")
	ErrNoPending   = errors.New("no TOTP enrollment is pending")
)

// ValidatePassword checks the password policy; the error never holds the password.
func ValidatePassword(password string) error {
	if utf8.RuneCountInString(password) < MinPasswordLen {
		return fmt.Errorf("%w: password must be at least %d characters", ErrUserInvalid, MinPasswordLen)
	}
	if len(password) > maxPasswordLen {
		return fmt.Errorf("%w: password must be at most %d bytes", ErrUserInvalid, maxPasswordLen)
	}
	if !utf8.ValidString(password) {
		return fmt.Errorf("%w: password must be UTF-8", ErrUserInvalid)
	}
	return nil
}

// Create validates and stores a new user with an argon2id hash of password.
// The role is not checked here (the admin API knows the roles). Errors wrap
// ErrUserInvalid (with a safe message), ErrUserExists, or a store failure.
func (u *Users) Create(ctx context.Context, name, role, password string) (store.User, error) {
	if !UserNameRE.MatchString(name) || name == ReservedUserName {
		return store.User{}, fmt.Errorf("%w: name must be 1 to 63 letters, digits, '.', '_' or '-' (not %q)", ErrUserInvalid, ReservedUserName)
	}
	if role == "" {
		return store.User{}, fmt.Errorf("%w: role is required", ErrUserInvalid)
	}
	if err := ValidatePassword(password); err != nil {
		return store.User{}, err
	}
	h, err := u.hash(ctx, password)
	if err != nil {
		return store.User{}, fmt.Errorf("hash password: %w", err)
	}
	usr := store.User{Name: name, Role: role, PasswordHash: h, CreatedAt: u.now().UTC()}
	if err := u.Store.CreateUser(ctx, usr); errors.Is(err, store.ErrConflict) {
		return store.User{}, ErrUserExists
	} else if err != nil {
		return store.User{}, err
	}
	return usr, nil
}

// StartTOTP generates a new TOTP secret for a user who has none enrolled
// and stores it as pending (replacing an earlier pending one). It returns the
// otpauth URI, to be shown once. ErrMFAEnrolled if TOTP is already enrolled
// (ResetTOTP first), ErrNoSuchUser if there is no such user.
func (u *Users) StartTOTP(ctx context.Context, name string) (uri string, err error) {
	secret, uri, err := NewTOTP(name)
	if err != nil {
		return "", err
	}
	_, err = u.Store.UpdateUser(ctx, name, func(usr *store.User) error {
		if usr.MFAEnrolled {
			return ErrMFAEnrolled
		}
		// Sealed inside the write, so a master-key rotation either sees
		// this seed (and re-wraps it) or runs after it under the new key.
		sealed, keyID, err := u.seal(ctx, name, secret)
		if err != nil {
			return fmt.Errorf("seal totp seed: %w", err)
		}
		usr.TOTPSecret, usr.TOTPKeyID, usr.TOTPLastStep = sealed, keyID, 0
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return "", ErrNoSuchUser
	}
	if err != nil {
		return "", err
	}
	return uri, nil
}

// ConfirmTOTP completes a pending enrollment with a first valid code.
// ErrBadCode if the code does not match, ErrNoPending if no enrollment is
// pending, ErrMFAEnrolled if it is already complete.
func (u *Users) ConfirmTOTP(ctx context.Context, name, code string) error {
	now := u.now()
	_, err := u.Store.UpdateUser(ctx, name, func(usr *store.User) error {
		if usr.MFAEnrolled {
			return ErrMFAEnrolled
		}
		if usr.TOTPSecret == "" {
			return ErrNoPending
		}
		seed, err := u.seed(ctx, usr)
		if err != nil {
			return fmt.Errorf("open totp seed: %w", err)
		}
		step, err := CheckTOTP(code, seed, now, usr.TOTPLastStep)
		if err != nil {
			return err
		}
		usr.MFAEnrolled, usr.TOTPLastStep = true, step
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return ErrNoSuchUser
	}
	return err
}

// ResetTOTP removes a user's TOTP secret (enrolled or pending). A role that
// requires MFA cannot log in again until it enrolls anew.
func (u *Users) ResetTOTP(ctx context.Context, name string) error {
	_, err := u.Store.UpdateUser(ctx, name, func(usr *store.User) error {
		usr.TOTPSecret, usr.TOTPKeyID, usr.MFAEnrolled, usr.TOTPLastStep = "", "", false, 0
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return ErrNoSuchUser
	}
	return err
}

// Reasons a login fails, for events. They never hold secret material.
const (
	ReasonUnknownUser    = "unknown user"
	ReasonBadPassword    = "wrong password"
	ReasonBadCode        = "wrong or reused TOTP code"
	ReasonMissingCode    = "TOTP code required"
	ReasonLocked         = "locked out"
	ReasonMFANotEnrolled = "role requires MFA but TOTP is not enrolled"
)

// LoginError is a refused login. Reason is for events only: the answer to
// the client must not distinguish an unknown user, a wrong password, a
// wrong code, and a right password of a user whose role requires MFA that
// is not enrolled yet. RetryAfter is set when the name is locked out
// (Locked: by this very failure).
type LoginError struct {
	Reason     string
	RetryAfter time.Duration
	Locked     bool // this failure locked the account
}

func (e *LoginError) Error() string { return "login refused: " + e.Reason }

// Session is a successful login.
type Session struct {
	Token     string // shown once
	ID        string // the session credential's id, safe to log
	User      string
	Role      string
	ExpiresAt time.Time
}

// Login checks name, password and (when the user has TOTP enrolled, or the
// role requires MFA) a TOTP code, and on success stores and returns a new
// session. A refusal is a *LoginError; any other error means the check
// could not run and the caller must refuse.
//
// A user whose role requires MFA but who has not enrolled TOTP cannot log
// in: that refusal comes after the password check and is a failure like
// any other (ReasonMFANotEnrolled), so the answer never shows whether the
// password was right.
//
// Lockout: a locked name is refused (RetryAfter set) without checking the
// password. Every failed check counts; at MaxFailures consecutive failures
// the name is locked for LockBase, and each further failure doubles the
// lock up to LockMax. A success resets the count.
func (u *Users) Login(ctx context.Context, name, password, code string) (Session, error) {
	now := u.now()
	var usr store.User
	err := store.ErrNotFound
	if UserNameRE.MatchString(name) {
		usr, err = u.Store.User(ctx, name)
	}
	if errors.Is(err, store.ErrNotFound) {
		return Session{}, u.ghostLogin(ctx, name, password, now)
	}
	if err != nil {
		return Session{}, fmt.Errorf("look up user: %w", err)
	}
	if usr.LockedUntil != nil && now.Before(*usr.LockedUntil) {
		return Session{}, &LoginError{Reason: ReasonLocked, RetryAfter: usr.LockedUntil.Sub(now)}
	}
	ok, err := u.verify(ctx, password, usr.PasswordHash)
	if err != nil {
		return Session{}, fmt.Errorf("verify password: %w", err)
	}
	if !ok {
		return Session{}, u.fail(ctx, name, ReasonBadPassword, now)
	}
	needCode := usr.MFAEnrolled || u.requireMFA(usr.Role)
	if needCode && !usr.MFAEnrolled {
		// The password was right, but the caller must not learn it: the
		// same answer, the same work (the failure is recorded) and the same
		// count toward lockout as a wrong password. Only the event's
		// reason tells the operator.
		return Session{}, u.fail(ctx, name, ReasonMFANotEnrolled, now)
	}
	var loginErr *LoginError
	usr, err = u.Store.UpdateUser(ctx, name, func(s *store.User) error {
		if needCode {
			if code == "" {
				return &LoginError{Reason: ReasonMissingCode}
			}
			seed, err := u.seed(ctx, s)
			if err != nil {
				return fmt.Errorf("open totp seed: %w", err)
			}
			step, err := CheckTOTP(code, seed, now, s.TOTPLastStep)
			if err != nil {
				return &LoginError{Reason: ReasonBadCode}
			}
			s.TOTPLastStep = step
		}
		s.FailedAttempts, s.LockedUntil = 0, nil
		return nil
	})
	if errors.As(err, &loginErr) {
		return Session{}, u.fail(ctx, name, loginErr.Reason, now)
	}
	if errors.Is(err, store.ErrNotFound) { // deleted meanwhile
		return Session{}, &LoginError{Reason: ReasonUnknownUser}
	}
	if err != nil {
		return Session{}, fmt.Errorf("record login: %w", err)
	}
	ttl := u.SessionTTL
	if ttl <= 0 {
		ttl = DefaultSessionTTL
	}
	token, c, err := NewSession(usr, ttl, now)
	if err != nil {
		return Session{}, err
	}
	if err := u.Store.CreateCredential(ctx, c); err != nil {
		return Session{}, fmt.Errorf("store session: %w", err)
	}
	return Session{Token: token, ID: c.ID, User: usr.Name, Role: usr.Role, ExpiresAt: *c.ExpiresAt}, nil
}

// lockFor is the lock after n consecutive failures (0 below the threshold).
func (u *Users) lockFor(n int) time.Duration {
	maxF, base, top := u.MaxFailures, u.LockBase, u.LockMax
	if maxF <= 0 {
		maxF = DefaultMaxFailures
	}
	if base <= 0 {
		base = DefaultLockBase
	}
	if top <= 0 {
		top = DefaultLockMax
	}
	if n < maxF {
		return 0
	}
	d := base
	for i := maxF; i < n && d < top; i++ {
		d *= 2
	}
	return min(d, top)
}

// fail counts a failed login of an existing user and returns the refusal.
func (u *Users) fail(ctx context.Context, name, reason string, now time.Time) error {
	var lock time.Duration
	_, err := u.Store.UpdateUser(ctx, name, func(s *store.User) error {
		s.FailedAttempts++
		if lock = u.lockFor(s.FailedAttempts); lock > 0 {
			until := now.Add(lock).UTC()
			s.LockedUntil = &until
		}
		return nil
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("record failed login: %w", err)
	}
	return &LoginError{Reason: reason, Locked: lock > 0, RetryAfter: lock}
}

// maxGhosts bounds the memory used to lock out names that are not users.
const maxGhosts = 10_000

// ghostLogin handles a login for a name that is not a user: the same hash
// work, and the same lockout, as a wrong password.
func (u *Users) ghostLogin(ctx context.Context, name, password string, now time.Time) error {
	u.mu.Lock()
	g := u.ghosts[name]
	u.mu.Unlock()
	if now.Before(g.until) {
		return &LoginError{Reason: ReasonLocked, RetryAfter: g.until.Sub(now)}
	}
	if err := u.init(); err != nil {
		return err
	}
	if _, err := u.verify(ctx, password, u.dummy); err != nil {
		return fmt.Errorf("verify password: %w", err)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.ghosts == nil || len(u.ghosts) >= maxGhosts {
		u.ghosts = map[string]ghost{}
	}
	g = u.ghosts[name]
	g.failures++
	lock := u.lockFor(g.failures)
	if lock > 0 {
		g.until = now.Add(lock)
	}
	u.ghosts[name] = g
	return &LoginError{Reason: ReasonUnknownUser, Locked: lock > 0, RetryAfter: lock}
}
