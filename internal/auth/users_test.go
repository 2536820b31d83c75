package auth

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"warden/internal/store"
	"warden/internal/store/sqlite"
)

// fakeClock is a settable clock, safe for concurrent use.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newUsers(t *testing.T) (*Users, *fakeClock, *sqlite.DB) {
	t.Helper()
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "w.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	clk := &fakeClock{t: time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)}
	return &Users{Store: db, Now: clk.Now, PasswordParams: testParams}, clk, db
}

const goodPW = "a long enough password"

func loginErr(t *testing.T, err error) *LoginError {
	t.Helper()
	var le *LoginError
	if !errors.As(err, &le) {
		t.Fatalf("Login error = %v, want a *LoginError", err)
	}
	return le
}

func TestCreateUser(t *testing.T) {
	u, clk, db := newUsers(t)
	ctx := context.Background()
	usr, err := u.Create(ctx, "alice", RoleViewer, goodPW)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := db.User(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if stored.Role != RoleViewer || !stored.CreatedAt.Equal(clk.Now()) || !strings.HasPrefix(stored.PasswordHash, "$argon2id$v=19$") ||
		strings.Contains(stored.PasswordHash, goodPW) || stored.PasswordHash != usr.PasswordHash {
		t.Fatalf("stored user %+v: want role viewer, created now, an argon2id hash without the password", stored)
	}
	if ok, _ := VerifyPassword(goodPW, stored.PasswordHash); !ok {
		t.Fatal("the stored hash does not verify the password")
	}
	if _, err := u.Create(ctx, "alice", RoleViewer, goodPW); !errors.Is(err, ErrUserExists) {
		t.Errorf("Create(duplicate) = %v, want ErrUserExists", err)
	}
	for name, tc := range map[string]struct{ name, role, pw string }{
		"short password":  {"bob", RoleViewer, "elevenchars"},
		"bad name":        {"bob smith", RoleViewer, goodPW},
		"empty name":      {"", RoleViewer, goodPW},
		"reserved name":   {ReservedUserName, RoleAdmin, goodPW},
		"no role":         {"bob", "", goodPW},
		"huge password":   {"bob", RoleViewer, strings.Repeat("x", 2000)},
		"invalid UTF-8":   {"bob", RoleViewer, "\xff\xfe" + goodPW},
		"leading hyphen":  {"-bob", RoleViewer, goodPW},
		"too long a name": {strings.Repeat("b", 64), RoleViewer, goodPW},
	} {
		_, err := u.Create(ctx, tc.name, tc.role, tc.pw)
		if !errors.Is(err, ErrUserInvalid) {
			t.Errorf("Create(%s) = %v, want ErrUserInvalid", name, err)
		} else if tc.pw != "" && strings.Contains(err.Error(), tc.pw) {
			t.Errorf("Create(%s): the error contains the password", name)
		}
	}
	// Twelve characters, counted as characters, not bytes.
	if _, err := u.Create(ctx, "carol", RoleViewer, "ééééééééééé"); !errors.Is(err, ErrUserInvalid) {
		t.Errorf("Create(11 two-byte characters) = %v, want ErrUserInvalid", err)
	}
	if _, err := u.Create(ctx, "carol", RoleViewer, "éééééééééééé"); err != nil {
		t.Errorf("Create(12 two-byte characters) = %v, want nil", err)
	}
}

func TestLoginWithoutMFA(t *testing.T) {
	u, clk, db := newUsers(t)
	ctx := context.Background()
	if _, err := u.Create(ctx, "vic", RoleViewer, goodPW); err != nil {
		t.Fatal(err)
	}
	s, err := u.Login(ctx, "vic", goodPW, "")
	if err != nil {
		t.Fatalf("Login = %v", err)
	}
	if !strings.HasPrefix(s.Token, "wdn_ses_") || len(s.Token) != tokenLen || s.User != "vic" || s.Role != RoleViewer ||
		!s.ExpiresAt.Equal(clk.Now().Add(DefaultSessionTTL)) {
		t.Fatalf("Login = %+v (token elided), want a wdn_ses_ token for vic/viewer expiring in 8h", Session{ID: s.ID, User: s.User, Role: s.Role, ExpiresAt: s.ExpiresAt})
	}
	c, err := db.Credential(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if c.Kind != store.KindSession || c.Name != "vic" || c.Role != RoleViewer || c.ExpiresAt == nil || strings.Contains(string(c.Hash), s.Token[len(s.Token)-43:]) {
		t.Fatalf("stored session %+v: want kind session, name and role of the user, an expiry, and only a hash", c)
	}
	p, id, err := u.VerifySession(ctx, s.Token)
	if err != nil || p.Name != "vic" || p.Role != RoleViewer || p.ID != s.ID || id != s.ID {
		t.Fatalf("VerifySession = %+v, %q, %v; want vic/viewer", p, id, err)
	}

	le := loginErr(t, func() error { _, err := u.Login(ctx, "vic", goodPW+"x", ""); return err }())
	if le.Reason != ReasonBadPassword || le.RetryAfter != 0 {
		t.Fatalf("wrong password: %+v", le)
	}
	le = loginErr(t, func() error { _, err := u.Login(ctx, "nobody", goodPW, ""); return err }())
	if le.Reason != ReasonUnknownUser {
		t.Fatalf("unknown user: %+v", le)
	}
	if got, _ := db.User(ctx, "vic"); got.FailedAttempts != 1 {
		t.Fatalf("FailedAttempts = %d after one failure, want 1", got.FailedAttempts)
	}
	if _, err := u.Login(ctx, "vic", goodPW, ""); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.User(ctx, "vic"); got.FailedAttempts != 0 {
		t.Fatalf("FailedAttempts = %d after a success, want 0", got.FailedAttempts)
	}
}

func TestSessionValidity(t *testing.T) {
	u, clk, db := newUsers(t)
	ctx := context.Background()
	u.SessionTTL = time.Hour
	if _, err := u.Create(ctx, "dee", RoleDeployer, goodPW); err != nil {
		t.Fatal(err)
	}
	login := func() Session {
		t.Helper()
		s, err := u.Login(ctx, "dee", goodPW, "")
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	invalid := func(what, token string) {
		t.Helper()
		if _, _, err := u.VerifySession(ctx, token); !errors.Is(err, ErrInvalidCredential) {
			t.Errorf("VerifySession(%s) = %v, want ErrInvalidCredential", what, err)
		} else if strings.Contains(err.Error(), token[len(token)-10:]) {
			t.Errorf("VerifySession(%s): the error holds the token", what)
		}
	}
	s := login()
	clk.Add(time.Hour - time.Second)
	if _, _, err := u.VerifySession(ctx, s.Token); err != nil {
		t.Fatalf("VerifySession just before expiry = %v", err)
	}
	clk.Add(time.Second)
	invalid("expired", s.Token)

	s = login()
	invalid("tampered", s.Token[:len(s.Token)-1]+string('A'+(s.Token[len(s.Token)-1]+1)%26))
	invalid("admin prefix", "wdn_adm_"+s.Token[8:])
	adm, ac, _ := NewAdminToken("bootstrap", RoleAdmin, clk.Now())
	db.CreateCredential(ctx, ac)
	invalid("an admin token", adm)
	invalid("an admin token's secret under a session prefix", "wdn_ses_"+adm[8:])

	n, err := u.RevokeSessions(ctx, "dee")
	if err != nil || n != 2 { // the expired one too
		t.Fatalf("RevokeSessions = %d, %v; want 2", n, err)
	}
	invalid("revoked", s.Token)

	s = login()
	if _, err := db.UpdateUser(ctx, "dee", func(x *store.User) error { x.Role = RoleViewer; return nil }); err != nil {
		t.Fatal(err)
	}
	invalid("role changed", s.Token)

	s = login()
	if err := db.DeleteUser(ctx, "dee"); err != nil {
		t.Fatal(err)
	}
	invalid("user deleted", s.Token)
	clk.Add(time.Second)
	if _, err := u.Create(ctx, "dee", RoleViewer, goodPW); err != nil {
		t.Fatal(err)
	}
	invalid("user deleted and created again", s.Token)
}

// TestLockout: five consecutive failures lock for a minute, each further
// failure doubles the lock up to an hour, a locked account is refused even
// with the right password, and an unknown name behaves exactly the same.
func TestLockout(t *testing.T) {
	for _, name := range []string{"known", "ghost"} {
		t.Run(name, func(t *testing.T) {
			u, clk, db := newUsers(t)
			ctx := context.Background()
			if _, err := u.Create(ctx, "known", RoleViewer, goodPW); err != nil {
				t.Fatal(err)
			}
			attempt := func(pw string) *LoginError {
				t.Helper()
				_, err := u.Login(ctx, name, pw, "")
				return loginErr(t, err)
			}
			for i := 1; i < DefaultMaxFailures; i++ {
				if le := attempt("wrong password!"); le.Locked || le.RetryAfter != 0 {
					t.Fatalf("failure %d: %+v, want not locked yet", i, le)
				}
			}
			if le := attempt("wrong password!"); !le.Locked || le.RetryAfter != time.Minute {
				t.Fatalf("failure %d: %+v, want locked for a minute", DefaultMaxFailures, le)
			}
			wantLock := time.Minute
			for i := range 10 {
				le := attempt(goodPW)
				if le.Reason != ReasonLocked || le.RetryAfter != wantLock {
					t.Fatalf("round %d: right password while locked = %+v, want locked with Retry-After %v", i, le, wantLock)
				}
				clk.Add(wantLock - time.Second)
				if le := attempt(goodPW); le.RetryAfter != time.Second {
					t.Fatalf("round %d: a second before the end: %+v, want Retry-After 1s", i, le)
				}
				clk.Add(time.Second)
				next := min(2*wantLock, time.Hour)
				if le := attempt("still wrong!!"); !le.Locked || le.Reason == ReasonLocked || le.RetryAfter != next {
					t.Fatalf("round %d: a failure after the lock ended = %+v, want checked and locked again for %v", i, le, next)
				}
				wantLock = next
			}
			if wantLock != time.Hour {
				t.Fatalf("lock after many failures = %v, want capped at 1h", wantLock)
			}
			if name == "known" {
				if got, _ := db.User(ctx, "known"); got.FailedAttempts != DefaultMaxFailures+10 || got.LockedUntil == nil {
					t.Fatalf("stored user: %d failures, locked until %v", got.FailedAttempts, got.LockedUntil)
				}
				clk.Add(time.Hour)
				if _, err := u.Login(ctx, "known", goodPW, ""); err != nil {
					t.Fatalf("login after the lock ended = %v", err)
				}
				if got, _ := db.User(ctx, "known"); got.FailedAttempts != 0 || got.LockedUntil != nil {
					t.Fatalf("after a success: %d failures, locked until %v; want reset", got.FailedAttempts, got.LockedUntil)
				}
			}
		})
	}
}

// TestLoginTimingUnknownUser: an unknown user costs a password hash like a
// wrong password, so response times do not reveal which names exist.
func TestLoginTimingUnknownUser(t *testing.T) {
	u, _, _ := newUsers(t)
	u.PasswordParams = PasswordParams{Memory: 16 << 10, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}
	ctx := context.Background()
	if _, err := u.Create(ctx, "known", RoleViewer, goodPW); err != nil {
		t.Fatal(err)
	}
	u.MaxFailures = 1000 // keep both paths out of lockout
	median := func(name string) time.Duration {
		var ds []time.Duration
		for range 7 {
			start := time.Now()
			u.Login(ctx, name, "wrong password!", "")
			ds = append(ds, time.Since(start))
		}
		slices.Sort(ds)
		return ds[len(ds)/2]
	}
	median("known")
	median("unknown") // warm up
	k, g := median("known"), median("unknown")
	if ratio := float64(g) / float64(k); ratio < 0.33 || ratio > 3 {
		t.Fatalf("unknown user median %v, wrong password median %v: ratio %.2f, want within 3x (both hash once)", g, k, ratio)
	}
}

func totpCode(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCode(secret, at)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func secretOf(t *testing.T, uri string) string {
	t.Helper()
	_, q, _ := strings.Cut(uri, "secret=")
	s, _, _ := strings.Cut(q, "&")
	if s == "" {
		t.Fatal("no secret in the otpauth URI")
	}
	return s
}

func TestAdminNeedsMFA(t *testing.T) {
	u, clk, db := newUsers(t)
	ctx := context.Background()
	if _, err := u.Create(ctx, "ada", RoleAdmin, goodPW); err != nil {
		t.Fatal(err)
	}
	u.MaxFailures = 100 // this test counts failures; lockout is TestMFANotEnrolledIsAFailure's
	le := loginErr(t, func() error { _, err := u.Login(ctx, "ada", goodPW, "123456"); return err }())
	if le.Reason != ReasonMFANotEnrolled {
		t.Fatalf("admin login before enrollment = %+v, want refused as MFA not enrolled", le)
	}
	if le := loginErr(t, func() error { _, err := u.Login(ctx, "ada", "wrong password!", ""); return err }()); le.Reason != ReasonBadPassword {
		t.Fatalf("admin login with a wrong password = %+v, want refused as a wrong password", le)
	}

	uri, err := u.StartTOTP(ctx, "ada")
	if err != nil {
		t.Fatal(err)
	}
	secret := secretOf(t, uri)
	if got, _ := db.User(ctx, "ada"); got.TOTPSecret != secret || got.MFAEnrolled {
		t.Fatal("after StartTOTP: want the secret pending, not enrolled")
	}
	// Pending is not enrolled: still no login.
	if le := loginErr(t, func() error { _, err := u.Login(ctx, "ada", goodPW, totpCode(t, secret, clk.Now())); return err }()); le.Reason != ReasonMFANotEnrolled {
		t.Fatalf("login with a pending enrollment = %+v, want refused as MFA not enrolled", le)
	}
	if err := u.ConfirmTOTP(ctx, "ada", "000000"); !errors.Is(err, ErrBadCode) && totpCode(t, secret, clk.Now()) != "000000" {
		t.Fatalf("ConfirmTOTP(wrong code) = %v, want ErrBadCode", err)
	}
	first := totpCode(t, secret, clk.Now())
	if err := u.ConfirmTOTP(ctx, "ada", first); err != nil {
		t.Fatalf("ConfirmTOTP = %v", err)
	}
	if err := u.ConfirmTOTP(ctx, "ada", first); !errors.Is(err, ErrMFAEnrolled) {
		t.Fatalf("second ConfirmTOTP = %v, want ErrMFAEnrolled", err)
	}
	if _, err := u.StartTOTP(ctx, "ada"); !errors.Is(err, ErrMFAEnrolled) {
		t.Fatalf("StartTOTP when enrolled = %v, want ErrMFAEnrolled", err)
	}
	// The code that confirmed enrollment cannot log in.
	if le := loginErr(t, func() error { _, err := u.Login(ctx, "ada", goodPW, first); return err }()); le.Reason != ReasonBadCode {
		t.Fatalf("login with the enrollment code = %+v, want refused as reused", le)
	}
	if le := loginErr(t, func() error { _, err := u.Login(ctx, "ada", goodPW, ""); return err }()); le.Reason != ReasonMissingCode {
		t.Fatalf("login without a code = %+v", le)
	}
	clk.Add(30 * time.Second)
	code := totpCode(t, secret, clk.Now())
	s, err := u.Login(ctx, "ada", goodPW, code)
	if err != nil || s.Role != RoleAdmin {
		t.Fatalf("login with password and code = %+v, %v", s.Role, err)
	}
	if le := loginErr(t, func() error { _, err := u.Login(ctx, "ada", goodPW, code); return err }()); le.Reason != ReasonBadCode {
		t.Fatalf("the same code again = %+v, want refused as reused", le)
	}
	if got, _ := db.User(ctx, "ada"); got.FailedAttempts != 1 {
		t.Fatalf("FailedAttempts = %d, want 1 (the success reset the count, then one reuse)", got.FailedAttempts)
	}
	if err := u.ResetTOTP(ctx, "ada"); err != nil {
		t.Fatal(err)
	}
	clk.Add(30 * time.Second)
	if le := loginErr(t, func() error { _, err := u.Login(ctx, "ada", goodPW, totpCode(t, secret, clk.Now())); return err }()); le.Reason != ReasonMFANotEnrolled {
		t.Fatalf("login after ResetTOTP = %+v, want refused as MFA not enrolled", le)
	}
	for _, err := range []error{
		func() error { _, err := u.StartTOTP(ctx, "nobody"); return err }(),
		u.ConfirmTOTP(ctx, "nobody", "123456"),
		u.ResetTOTP(ctx, "nobody"),
	} {
		if !errors.Is(err, ErrNoSuchUser) {
			t.Errorf("TOTP call for an unknown user = %v, want ErrNoSuchUser", err)
		}
	}
	if err := u.ConfirmTOTP(ctx, "ada", "123456"); !errors.Is(err, ErrNoPending) {
		t.Errorf("ConfirmTOTP with nothing pending = %v, want ErrNoPending", err)
	}
}

// countingStore counts UpdateUser calls: the store work a login does.
type countingStore struct {
	UserStore
	mu      sync.Mutex
	updates int
}

func (c *countingStore) UpdateUser(ctx context.Context, name string, f func(*store.User) error) (store.User, error) {
	c.mu.Lock()
	c.updates++
	c.mu.Unlock()
	return c.UserStore.UpdateUser(ctx, name, f)
}

func (c *countingStore) take() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.updates
	c.updates = 0
	return n
}

// TestMFANotEnrolledIsAFailure, from the attacker's side: guessing the
// password of a user whose role requires MFA that is not enrolled. A right
// guess must look like a wrong one (same refusal apart from the reason kept
// for events, same store work after the one password hash both do) and
// count toward lockout, or the attacker learns the password and may keep
// guessing without limit.
func TestMFANotEnrolledIsAFailure(t *testing.T) {
	u, clk, db := newUsers(t)
	cs := &countingStore{UserStore: db}
	u.Store = cs
	ctx := context.Background()
	if _, err := u.Create(ctx, "ada", RoleAdmin, goodPW); err != nil {
		t.Fatal(err)
	}
	if _, err := u.Create(ctx, "bob", RoleAdmin, goodPW); err != nil {
		t.Fatal(err)
	}
	cs.take()
	attempt := func(name, pw string) (*LoginError, int) {
		t.Helper()
		_, err := u.Login(ctx, name, pw, "")
		le := loginErr(t, err)
		return le, cs.take()
	}
	for i := 1; i <= DefaultMaxFailures; i++ {
		right, rightWork := attempt("ada", goodPW)
		wrong, wrongWork := attempt("bob", "wrong password!")
		if right.Reason != ReasonMFANotEnrolled || wrong.Reason != ReasonBadPassword {
			t.Fatalf("attempt %d: reasons %q and %q, want %q and %q", i, right.Reason, wrong.Reason, ReasonMFANotEnrolled, ReasonBadPassword)
		}
		if right.Locked != wrong.Locked || right.RetryAfter != wrong.RetryAfter {
			t.Fatalf("attempt %d: right password %+v, wrong password %+v: want the same refusal", i, right, wrong)
		}
		if rightWork != wrongWork {
			t.Fatalf("attempt %d: right password did %d store writes, wrong password %d: want the same work", i, rightWork, wrongWork)
		}
		got, _ := db.User(ctx, "ada")
		if got.FailedAttempts != i {
			t.Fatalf("attempt %d: ada's FailedAttempts = %d, want %d (a right password without MFA counts)", i, got.FailedAttempts, i)
		}
	}
	// Locked after MaxFailures, exactly as for wrong passwords.
	if le, _ := attempt("ada", goodPW); le.Reason != ReasonLocked || le.RetryAfter != time.Minute {
		t.Fatalf("right password after %d attempts = %+v, want locked for a minute", DefaultMaxFailures, le)
	}
	// Once enrolled (and the lock over), the right password and code log in.
	clk.Add(time.Minute)
	uri, err := u.StartTOTP(ctx, "ada")
	if err != nil {
		t.Fatal(err)
	}
	secret := secretOf(t, uri)
	if err := u.ConfirmTOTP(ctx, "ada", totpCode(t, secret, clk.Now())); err != nil {
		t.Fatal(err)
	}
	clk.Add(30 * time.Second)
	if _, err := u.Login(ctx, "ada", goodPW, totpCode(t, secret, clk.Now())); err != nil {
		t.Fatalf("login after enrollment = %v", err)
	}
}

// TestNonAdminWithMFA: a role that does not require MFA must still present
// a code once it enrolled.
func TestNonAdminWithMFA(t *testing.T) {
	u, clk, _ := newUsers(t)
	ctx := context.Background()
	if _, err := u.Create(ctx, "vee", RoleViewer, goodPW); err != nil {
		t.Fatal(err)
	}
	uri, err := u.StartTOTP(ctx, "vee")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Login(ctx, "vee", goodPW, ""); err != nil {
		t.Fatalf("login while enrollment is pending = %v, want allowed (viewer)", err)
	}
	secret := secretOf(t, uri)
	if err := u.ConfirmTOTP(ctx, "vee", totpCode(t, secret, clk.Now())); err != nil {
		t.Fatal(err)
	}
	if le := loginErr(t, func() error { _, err := u.Login(ctx, "vee", goodPW, ""); return err }()); le.Reason != ReasonMissingCode {
		t.Fatalf("login without a code after enrolling = %+v", le)
	}
	clk.Add(30 * time.Second)
	if _, err := u.Login(ctx, "vee", goodPW, totpCode(t, secret, clk.Now())); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentCodeReuse: of many concurrent logins with the same valid
// code, exactly one succeeds.
func TestConcurrentCodeReuse(t *testing.T) {
	u, clk, _ := newUsers(t)
	ctx := context.Background()
	if _, err := u.Create(ctx, "ada", RoleAdmin, goodPW); err != nil {
		t.Fatal(err)
	}
	uri, _ := u.StartTOTP(ctx, "ada")
	secret := secretOf(t, uri)
	if err := u.ConfirmTOTP(ctx, "ada", totpCode(t, secret, clk.Now())); err != nil {
		t.Fatal(err)
	}
	clk.Add(30 * time.Second)
	code := totpCode(t, secret, clk.Now())
	u.MaxFailures = 100
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for range 8 {
		wg.Go(func() {
			if _, err := u.Login(ctx, "ada", goodPW, code); err == nil {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if ok != 1 {
		t.Fatalf("%d concurrent logins with one code succeeded, want exactly 1", ok)
	}
}
