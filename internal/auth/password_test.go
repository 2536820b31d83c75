package auth

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

// testParams keep tests fast; production uses DefaultPasswordParams.
var testParams = PasswordParams{Memory: 1 << 10, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

var phcRE = regexp.MustCompile(`^\$argon2id\$v=19\$m=1024,t=1,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)

func TestHashPassword(t *testing.T) {
	const pw = "correct horse battery staple"
	h, err := HashPassword(pw, testParams)
	if err != nil {
		t.Fatal(err)
	}
	if !phcRE.MatchString(h) {
		t.Fatalf("HashPassword = %q, want a PHC argon2id string with the given parameters", h)
	}
	if strings.Contains(h, pw) {
		t.Fatal("the hash contains the password")
	}
	h2, _ := HashPassword(pw, testParams)
	if h == h2 {
		t.Error("two hashes of one password are equal: the salt is not random")
	}
	for _, tc := range []struct {
		pw   string
		want bool
	}{
		{pw, true},
		{pw + " ", false},
		{"", false},
		{strings.ToUpper(pw), false},
	} {
		got, err := VerifyPassword(tc.pw, h)
		if err != nil || got != tc.want {
			t.Errorf("VerifyPassword(%d-byte password) = %v, %v; want %v", len(tc.pw), got, err, tc.want)
		}
	}
}

func TestDefaultParams(t *testing.T) {
	p := DefaultPasswordParams
	if p.Memory < 64<<10 || p.Time < 1 || p.Threads < 1 || p.SaltLen < 16 || p.KeyLen < 32 {
		t.Fatalf("DefaultPasswordParams = %+v, want at least m=64MiB t=1 p=1, 16-byte salt, 32-byte key", p)
	}
}

func TestPasswordLengthLimit(t *testing.T) {
	long := strings.Repeat("a", maxPasswordLen+1)
	if _, err := HashPassword(long, testParams); err == nil || strings.Contains(err.Error(), "aaaa") {
		t.Fatalf("HashPassword(too long) = %v, want an error without the password", err)
	}
	h, err := HashPassword(long[:maxPasswordLen], testParams)
	if err != nil {
		t.Fatal(err)
	}
	// A longer password sharing the hashed prefix must not match.
	if ok, _ := VerifyPassword(long, h); ok {
		t.Fatal("VerifyPassword accepted a longer password whose prefix matches")
	}
}

func TestHashPasswordRejectsBadParams(t *testing.T) {
	for name, p := range map[string]PasswordParams{
		"zero memory":  {Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32},
		"zero time":    {Memory: 1024, Threads: 1, SaltLen: 16, KeyLen: 32},
		"short salt":   {Memory: 1024, Time: 1, Threads: 1, SaltLen: 4, KeyLen: 32},
		"short key":    {Memory: 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 8},
		"huge memory":  {Memory: maxHashMemory + 1, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32},
		"many threads": {Memory: 1024, Time: 1, Threads: 200, SaltLen: 16, KeyLen: 32},
	} {
		if _, err := HashPassword("a password of length", p); err == nil {
			t.Errorf("HashPassword(%s) = nil error, want refusal", name)
		}
	}
}

func TestParsePHCRejects(t *testing.T) {
	good, err := HashPassword("a fine password", testParams)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parsePHC(good); err != nil {
		t.Fatalf("parsePHC(good) = %v", err)
	}
	parts := strings.Split(good, "$")
	salt, key := parts[4], parts[5]
	for name, s := range map[string]string{
		"empty":          "",
		"argon2i":        "$argon2i$v=19$m=1024,t=1,p=1$" + salt + "$" + key,
		"version 16":     "$argon2id$v=16$m=1024,t=1,p=1$" + salt + "$" + key,
		"param order":    "$argon2id$v=19$t=1,m=1024,p=1$" + salt + "$" + key,
		"missing p":      "$argon2id$v=19$m=1024,t=1$" + salt + "$" + key,
		"extra param":    "$argon2id$v=19$m=1024,t=1,p=1,x=2$" + salt + "$" + key,
		"zero t":         "$argon2id$v=19$m=1024,t=0,p=1$" + salt + "$" + key,
		"leading zero":   "$argon2id$v=19$m=01024,t=1,p=1$" + salt + "$" + key,
		"huge m":         "$argon2id$v=19$m=4294967295,t=1,p=1$" + salt + "$" + key,
		"huge t":         "$argon2id$v=19$m=1024,t=99,p=1$" + salt + "$" + key,
		"m below 8p":     "$argon2id$v=19$m=8,t=1,p=2$" + salt + "$" + key,
		"padded salt":    "$argon2id$v=19$m=1024,t=1,p=1$" + salt + "==$" + key,
		"short salt":     "$argon2id$v=19$m=1024,t=1,p=1$YWJj$" + key,
		"short key":      "$argon2id$v=19$m=1024,t=1,p=1$" + salt + "$YWJj",
		"trailing field": good + "$x",
		"no leading $":   good[1:],
		"negative":       "$argon2id$v=19$m=-1,t=1,p=1$" + salt + "$" + key,
	} {
		if _, err := parsePHC(s); !errors.Is(err, ErrBadHash) {
			t.Errorf("parsePHC(%s) = %v, want ErrBadHash", name, err)
		}
		if ok, err := VerifyPassword("a fine password", s); ok || err == nil {
			t.Errorf("VerifyPassword against %s = %v, %v; want false and an error", name, ok, err)
		}
	}
}

// FuzzParsePHC: the stored-hash parser never panics, and whatever it
// accepts is within the bounds verification relies on.
func FuzzParsePHC(f *testing.F) {
	good, _ := HashPassword("seed password!", testParams)
	f.Add(good)
	f.Add("$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA")
	f.Add("$$$$$")
	f.Fuzz(func(t *testing.T, s string) {
		h, err := parsePHC(s)
		if err != nil {
			return
		}
		if h.p.Memory == 0 || h.p.Memory > maxHashMemory || h.p.Time == 0 || h.p.Time > maxHashTime ||
			h.p.Threads == 0 || h.p.Threads > maxHashThreads || len(h.salt) < 8 || len(h.key) < 16 ||
			h.p.Memory < 8*uint32(h.p.Threads) {
			t.Fatalf("parsePHC(%q) accepted out-of-bounds %+v", s, h.p)
		}
	})
}
