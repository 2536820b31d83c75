package jwtauth

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestTimeClaimsMustBeNumbers: exp, nbf and iat are NumericDates (RFC 7519
// §2), JSON numbers. A signed token carrying one as anything else is
// refused, whatever jwx would make of it (it reads a string of digits as a
// date, so "nbf": "<far future>" as a string would otherwise pass).
func TestTimeClaimsMustBeNumbers(t *testing.T) {
	future := strconv.FormatInt(t0.Add(time.Hour).Unix(), 10)
	past := strconv.FormatInt(t0.Add(-time.Hour).Unix(), 10)
	values := []struct {
		name string
		val  any
	}{
		{"digits string", nil}, // a plausible date as a string: set per claim below
		{"string", "string"},
		{"true", true},
		{"false", false},
		{"array", []any{1}},
		{"object", map[string]any{}},
		{"null", nil},
	}
	for _, claim := range []string{"exp", "nbf", "iat"} {
		for _, tv := range values {
			t.Run(claim+" "+tv.name, func(t *testing.T) {
				c := claimsAt(t0)
				c[claim] = tv.val
				if tv.name == "digits string" {
					c[claim] = past // nbf and iat: in the past, valid as a number
					if claim == "exp" {
						c[claim] = future
					}
				}
				v, _ := newFileVerifier(t, Options{})
				got, err := v.Verify(context.Background(), tok(t, "ed1", c))
				if err == nil {
					t.Fatalf("Verify(%s = %s) = %+v, nil; want refused", claim, tv.name, got)
				}
				if !errors.Is(err, ErrInvalidToken) || !strings.Contains(err.Error(), claim+" is not a JSON number") {
					t.Errorf("Verify(%s = %s) = %q, want an ErrInvalidToken naming %s as not a JSON number", claim, tv.name, err, claim)
				}
			})
		}
	}
	// Numbers stay accepted, fractional ones too (NumericDate allows them).
	for _, claim := range []string{"exp", "nbf", "iat"} {
		c := claimsAt(t0)
		if claim == "exp" {
			c[claim] = float64(t0.Add(time.Hour).Unix()) + 0.5
		} else {
			c[claim] = float64(t0.Add(-time.Minute).Unix()) + 0.25
		}
		v, _ := newFileVerifier(t, Options{})
		if _, err := v.Verify(context.Background(), tok(t, "ed1", c)); err != nil {
			t.Errorf("Verify(fractional %s) = %v, want nil", claim, err)
		}
	}
}

// TestSubjectRequired: a token without a subject names nobody, so it can
// carry no identity (nor a rate-limit bucket of its own): refused.
func TestSubjectRequired(t *testing.T) {
	tests := []struct {
		name string
		sub  any // nil: absent
	}{
		{"absent", nil},
		{"empty", ""},
		{"number", 7},
		{"array", []string{"alice"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, _ := newFileVerifier(t, Options{})
			c, err := v.Verify(context.Background(), tok(t, "ec1", withClaim("sub", tt.sub)))
			if err == nil {
				t.Fatalf("Verify(sub %s) = %+v, nil; want refused", tt.name, c)
			}
			if !errors.Is(err, ErrInvalidToken) {
				t.Errorf("Verify(sub %s) = %v, want it to wrap ErrInvalidToken", tt.name, err)
			}
		})
	}
	// The message for an absent or empty sub says so.
	v, _ := newFileVerifier(t, Options{})
	if _, err := v.Verify(context.Background(), tok(t, "ec1", withClaim("sub", ""))); err == nil || !strings.Contains(err.Error(), "sub") {
		t.Errorf("Verify(empty sub) = %v, want an error naming sub", err)
	}
}
