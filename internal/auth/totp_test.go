package auth

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
)

func TestNewTOTP(t *testing.T) {
	secret, uri, err := NewTOTP("alice")
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "otpauth" || u.Host != "totp" {
		t.Fatalf("NewTOTP URI is not an otpauth totp URI (%v)", err)
	}
	q := u.Query()
	if q.Get("secret") != secret || q.Get("issuer") != "warden" || !strings.Contains(u.Path, "alice") {
		t.Fatalf("URI path %q issuer %q: want the account and issuer warden, and the returned secret", u.Path, q.Get("issuer"))
	}
	if len(secret) < 32 {
		t.Fatalf("secret has %d base32 characters, want >= 32 (160 bits)", len(secret))
	}
	s2, _, _ := NewTOTP("alice")
	if s2 == secret {
		t.Fatal("two enrollments got the same secret")
	}
}

func TestCheckTOTP(t *testing.T) {
	secret, _, err := NewTOTP("alice")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2031, 3, 4, 5, 6, 7, 0, time.UTC)
	cur := TOTPStep(now)
	code := func(step int64) string {
		c, err := totp.GenerateCode(secret, time.Unix(step*30, 0))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, tc := range []struct {
		name     string
		step     int64
		last     int64
		wantStep int64
		ok       bool
	}{
		{"current", cur, 0, cur, true},
		{"one step late", cur - 1, 0, cur - 1, true},
		{"one step early", cur + 1, 0, cur + 1, true},
		{"two steps late", cur - 2, 0, 0, false},
		{"two steps early", cur + 2, 0, 0, false},
		{"reused", cur, cur, 0, false},
		{"older than the last used", cur - 1, cur, 0, false},
		{"newer than the last used", cur + 1, cur, cur + 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := CheckTOTP(code(tc.step), secret, now, tc.last)
			if tc.ok != (err == nil) || got != tc.wantStep {
				t.Fatalf("CheckTOTP(step %+d, last %d) = %d, %v; want %d, ok=%v", tc.step-cur, tc.last-cur, got, err, tc.wantStep, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrBadCode) {
				t.Fatalf("error %v, want ErrBadCode", err)
			}
		})
	}
	good := code(cur)
	for _, bad := range []string{"", "12345", "1234567", "12a456", " " + good[1:], "００００００"} {
		if _, err := CheckTOTP(bad, secret, now, 0); !errors.Is(err, ErrBadCode) {
			t.Errorf("CheckTOTP(%q) = %v, want ErrBadCode", bad, err)
		}
	}
	if _, err := CheckTOTP(good, "not base32!", now, 0); !errors.Is(err, ErrBadCode) {
		t.Errorf("CheckTOTP with an undecodable secret = %v, want ErrBadCode", err)
	}
	// Agrees with the library's own validator (±1 step) at the real time.
	real := time.Now()
	if c, _ := totp.GenerateCode(secret, real); !totp.Validate(c, secret) {
		t.Fatal("totp.Validate refuses its own code")
	} else if _, err := CheckTOTP(c, secret, real, 0); err != nil {
		t.Errorf("CheckTOTP refuses a code totp.Validate accepts: %v", err)
	}
}
