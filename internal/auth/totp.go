package auth

import (
	"crypto/subtle"
	"errors"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// TOTP parameters: RFC 6238 defaults, which every authenticator app supports.
const (
	totpPeriod = 30 // seconds
	totpSkew   = 1  // steps accepted either side of the current one
	totpDigits = otp.DigitsSix
	totpIssuer = "warden"
)

// ErrBadCode: a TOTP code is malformed, wrong, or was already used.
var ErrBadCode = errors.New("invalid one-time code")

// NewTOTP generates a TOTP secret for account. It returns the base32 secret
// (to store) and the otpauth:// URI that carries it (to show once, e.g. as
// a QR code). Neither may be logged.
func NewTOTP(account string) (secret, uri string, err error) {
	key, err := totp.Generate(totp.GenerateOpts{
		Issuer: totpIssuer, AccountName: account, Period: totpPeriod, Digits: totpDigits,
		Algorithm: otp.AlgorithmSHA1, SecretSize: 20,
	})
	if err != nil {
		return "", "", err
	}
	return key.Secret(), key.URL(), nil
}

// TOTPStep is the time step a moment falls in.
func TOTPStep(t time.Time) int64 { return t.Unix() / totpPeriod }

// CheckTOTP checks code against secret at now, accepting the current step
// and one step either side. A step at or before lastStep is refused, so a
// code (and any older one) is accepted at most once. It returns the step
// the code matched, to store as the new lastStep, or ErrBadCode.
//
// Every candidate step is computed and compared in constant time, whatever
// matches.
func CheckTOTP(code, secret string, now time.Time, lastStep int64) (int64, error) {
	if len(code) != totpDigits.Length() {
		return 0, ErrBadCode
	}
	for _, c := range code {
		if c < '0' || c > '9' {
			return 0, ErrBadCode
		}
	}
	opts := totp.ValidateOpts{Period: totpPeriod, Skew: 0, Digits: totpDigits, Algorithm: otp.AlgorithmSHA1}
	cur := TOTPStep(now)
	matched := int64(-1)
	for step := cur - totpSkew; step <= cur+totpSkew; step++ {
		want, err := totp.GenerateCodeCustom(secret, time.Unix(step*totpPeriod, 0), opts)
		if err != nil {
			return 0, ErrBadCode // a secret that does not decode never matches
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 && step > lastStep {
			matched = step
		}
	}
	if matched < 0 {
		return 0, ErrBadCode
	}
	return matched, nil
}
