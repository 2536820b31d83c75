package dlp

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// Credential-shaped fixtures are assembled at run time so that the source
// file itself does not look like it holds secrets to repository scanners.
var (
	awsKeyID   = "AK" + "IA" + "IOSFODNN7EXAMPLE"
	awsSTSID   = "AS" + "IA" + "Y34FZKBOKMUTVV7A"
	awsSecret  = "wJalrXUtnFEMI/K7MDENG" + "/bPxRfiCYEXAMPLEKEY"
	ghToken    = "gh" + "p_" + "aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dF3hJ5"
	ghFine     = "github" + "_pat_" + "11ABCDEFG0123456789abc_" + strings.Repeat("xY9", 20)
	slackToken = "xo" + "xb-" + "123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"
	stripeKey  = "sk" + "_live_" + "4eC39HqLyjWDarjtT1zdp7dc"
	stripeRKey = "rk" + "_live_" + "51H8xYzAbCdEfGh0123456789"
	jwtHeader  = b64(`{"alg":"HS256","typ":"JWT"}`)
	jwtToken   = jwtHeader + "." + b64(`{"sub":"1234567890"}`) + "." + "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
	pemKey     = "-----BEGIN " + "RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA1234abcd\nZm9vYmFyYmF6+/==\n-----END RSA PRIVATE KEY-----"
)

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// withLuhn appends the Luhn check digit to the digits in p.
func withLuhn(p string) string {
	for d := byte('0'); d <= '9'; d++ {
		if luhn([]byte(p + string(d))) {
			return p + string(d)
		}
	}
	panic("unreachable")
}

// group4 writes the digits d in groups of four joined by sep.
func group4(d, sep string) string {
	var parts []string
	for len(d) > 4 {
		parts, d = append(parts, d[:4]), d[4:]
	}
	return strings.Join(append(parts, d), sep)
}

// breakLuhn returns p with a check digit that fails Luhn.
func breakLuhn(p string) string {
	good := withLuhn(p)
	last := good[len(good)-1]
	return p + string('0'+(last-'0'+1)%10)
}

type tcase struct {
	name string
	in   string
	want []Finding
}

func one(k Kind) []Finding { return []Finding{{k, 1}} }

var cases = []tcase{
	// Payment cards.
	{"card/visa16", `{"pan":"4111111111111111"}`, one(KindCard)},
	{"card/visa16_spaces", "card 4111 1111 1111 1111 ok", one(KindCard)},
	{"card/visa16_hyphens", "card 4111-1111-1111-1111.", one(KindCard)},
	{"card/visa13", "4222222222222", one(KindCard)},
	{"card/visa19", withLuhn("411111111111111111"), one(KindCard)},
	{"card/mastercard51", "5105105105105100", one(KindCard)},
	{"card/mastercard55", "5555 5555 5555 4444", one(KindCard)},
	{"card/mastercard2221", withLuhn("222100000000000"), one(KindCard)},
	{"card/mastercard2720", withLuhn("272099999999999"), one(KindCard)},
	{"card/amex34", withLuhn("34000000000000"), one(KindCard)},
	{"card/amex37", "378282246310005", one(KindCard)},
	{"card/amex_grouped", "3782 822463 10005", one(KindCard)},
	{"card/discover6011", "6011111111111117", one(KindCard)},
	{"card/discover65", withLuhn("650000000000000"), one(KindCard)},
	{"card/discover644", withLuhn("644000000000000"), one(KindCard)},
	{"card/discover649_19", withLuhn("649000000000000000"), one(KindCard)},
	{"card/jcb3528", withLuhn("352800000000000"), one(KindCard)},
	{"card/jcb3589_hyphens", group4(withLuhn("358900000000000"), "-"), one(KindCard)},
	{"card/jcb", "3530111333300000", one(KindCard)},
	{"card/diners300", "30569309025904", one(KindCard)},
	{"card/diners305", withLuhn("3050000000000"), one(KindCard)},
	{"card/diners36_grouped", "3622 720627 1667", one(KindCard)},
	{"card/diners38", "38520000023237", one(KindCard)},
	{"card/json_number", `{"n":4111111111111111}`, one(KindCard)},
	{"card/then_space_number", "4111 1111 1111 1111 2025", one(KindCard)},
	{"card/two", "4111111111111111,5555555555554444", []Finding{{KindCard, 2}}},
	{"card/negative_sign", "-4111111111111111", one(KindCard)},
	{"card/after_underscore", "pan_4111111111111111", one(KindCard)},

	{"card_miss/luhn_valid_wrong_prefix", "1234567812345670", nil},
	{"card_miss/luhn_valid_prefix9", withLuhn("999999999999999"), nil},
	{"card_miss/luhn_valid_prefix7", withLuhn("700000000000000"), nil},
	{"card_miss/order_id_fails_luhn", `{"order_id":"` + breakLuhn("400012345678901") + `"}`, nil},
	{"card_miss/visa_fails_luhn", "4111111111111112", nil},
	{"card_miss/visa_wrong_length", withLuhn("41111111111111"), nil},
	{"card_miss/amex_wrong_length", withLuhn("371449635398431"), nil},
	{"card_miss/mastercard_wrong_length", withLuhn("51051051051051"), nil},
	{"card_miss/diners_too_short", withLuhn("305693090259"), nil},
	{"card_miss/20_digits", "41111111111111111111", nil},
	{"card_miss/letters_after", "4111111111111111abc", nil},
	{"card_miss/letters_before", "x4111111111111111", nil},
	{"card_miss/decimal_fraction", "0.4111111111111111", nil},
	{"card_miss/decimal_integer", "4111111111111111.25", nil},
	{"card_miss/longer_hyphenated_after", "4111111111111111-01", nil},
	{"card_miss/longer_hyphenated_before", "99-4111111111111111", nil},
	{"card_miss/longer_hyphen_groups", "4111-1111-1111-1111-1111", nil},
	{"card_miss/mixed_separators", "4111 1111-1111 1111", nil},
	{"card_miss/bad_grouping", "41111 11111 111111", nil},
	{"card_miss/double_space", "4111  1111  1111  1111", nil},
	{"card_miss/float", `{"x":0.30000000000000004,"y":48.85661400000001}`, nil},

	// US social security numbers.
	{"ssn/hyphens", `{"ssn":"219-09-9999"}`, one(KindSSN)},
	{"ssn/spaces", "ssn 123 45 6789 on file", one(KindSSN)},
	{"ssn/start", "078-05-1120", one(KindSSN)},
	{"ssn/area899", "899-99-9999", one(KindSSN)},
	{"ssn_miss/area000", "000-12-3456", nil},
	{"ssn_miss/area666", "666-12-3456", nil},
	{"ssn_miss/area900", "900-12-3456", nil},
	{"ssn_miss/area999", "999-12-3456", nil},
	{"ssn_miss/group00", "123-00-4567", nil},
	{"ssn_miss/serial0000", "123-45-0000", nil},
	{"ssn_miss/area4", "1123-45-6789", nil},
	{"ssn_miss/serial5", "123-45-67890", nil},
	{"ssn_miss/trailing_group", "123-45-6789-1", nil},
	{"ssn_miss/leading_group", "9-123-45-6789", nil},
	{"ssn_miss/mixed_separators", "123-45 6789", nil},
	{"ssn_miss/no_separators", "123456789", nil},
	{"ssn_miss/letters", "123-45-6789x", nil},
	{"ssn_miss/decimal", "123-45-6789.5", nil},

	// Things that must not trigger at all.
	{"clean/uuid", `{"id":"123e4567-e89b-12d3-a456-426614174000"}`, nil},
	{"clean/uuid_digits", `{"id":"12345678-1234-1234-1234-123456789012"}`, nil},
	{"clean/iso_date", `{"at":"2024-01-15T10:30:00.123456789Z","d":"2024-01-15"}`, nil},
	{"clean/unix_ms", `{"ts":1700000000000,"ns":1700000000123456789}`, nil},
	{"clean/phone_us", "call +1 415 555 2671 or (415) 555-2671 or 1-800-555-0199", nil},
	{"clean/phone_e164", `{"phone":"+14155552671","uk":"+44 20 7946 0958"}`, nil},
	{"clean/versions", "v1.2.3 go1.26.8 10.0.19045.3803 1.2.3-rc.4+build.5", nil},
	{"clean/order_numbers", `{"order":"ORD-2024-000123","n":123456,"sku":"SKU-4111-1111"}`, nil},
	{"clean/json", `{"ok":true,"items":[{"id":1,"price":19.99,"qty":3}],"total":59.97,"currency":"EUR"}`, nil},
	{"clean/prose", "The bearer of this letter is a secret agent; ask for the access key.", nil},
	{"clean/empty", "", nil},

	// AWS.
	{"aws_access_key/akia", `{"AccessKeyId":"` + awsKeyID + `"}`, one(KindAWSAccessKey)},
	{"aws_access_key/asia", awsSTSID, one(KindAWSAccessKey)},
	{"aws_access_key_miss/short", awsKeyID[:19], nil},
	{"aws_access_key_miss/long", awsKeyID + "X", nil},
	{"aws_access_key_miss/prefixed", "x" + awsKeyID, nil},
	{"aws_access_key_miss/lowercase", "AKIA" + strings.ToLower(awsKeyID[4:]), nil},
	{"aws_access_key_miss/aida", "AIDA" + awsKeyID[4:], nil},
	{"aws_secret_key/ini", "aws_secret_access_key = " + awsSecret + "\n", one(KindAWSSecretKey)},
	{"aws_secret_key/env", "AWS_SECRET_ACCESS_KEY=" + awsSecret, one(KindAWSSecretKey)},
	{"aws_secret_key/json", `{"SecretAccessKey": "` + awsSecret + `"}`, one(KindAWSSecretKey)},
	{"aws_secret_key/escaped_json", `"{\"aws_secret_key\":\"` + awsSecret + `\"}"`, one(KindAWSSecretKey)},
	{"aws_secret_key/with_id", `{"AccessKeyId":"` + awsKeyID + `","SecretAccessKey":"` + awsSecret + `"}`, []Finding{{KindAWSAccessKey, 1}, {KindAWSSecretKey, 1}}},
	{"aws_secret_key_miss/unlabelled", `{"hash":"` + awsSecret + `"}`, nil},
	{"aws_secret_key_miss/39", "aws_secret_access_key=" + awsSecret[:39], nil},
	{"aws_secret_key_miss/41", "aws_secret_access_key=" + awsSecret + "A", nil},
	{"aws_secret_key_miss/other_label", "aws_secret_name: " + awsSecret, nil},
	{"aws_secret_key_miss/label_prefix", "aws_secretary=" + awsSecret, nil},

	// PEM private keys.
	{"private_key/pem", "key:\n" + pemKey + "\n", one(KindPrivateKey)},
	{"private_key/json_escaped", `{"key":"` + strings.ReplaceAll(pemKey, "\n", `\n`) + `"}`, one(KindPrivateKey)},
	{"private_key/pkcs8", "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----", one(KindPrivateKey)},
	{"private_key/truncated", `{"key":"-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIIrY","next":1}`, one(KindPrivateKey)},
	{"private_key_miss/certificate", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----", nil},
	{"private_key_miss/public", "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----", nil},
	{"private_key_miss/dashes", "----- ----------BEGIN-----", nil},

	// Bearer tokens.
	{"bearer_token/header", "Authorization: Bearer abcdef0123456789abcdef", one(KindBearerToken)},
	{"bearer_token/json", `{"auth":"bearer Zm9vYmFyYmF6cXV4cXV1eA1234=="}`, one(KindBearerToken)},
	{"bearer_token/letters_only_long", "Bearer AbcdefGhijklMnopqrStuvwxYzabcdEfgh", one(KindBearerToken)},
	{"bearer_token/jwt", "Bearer " + jwtToken, one(KindBearerToken)},
	{"bearer_token_miss/prose", "the bearer of bad news", nil},
	{"bearer_token_miss/word", "Bearer token required", nil},
	{"bearer_token_miss/short", "Bearer abc123", nil},
	{"bearer_token_miss/marker", "Bearer [REDACTED:bearer_token]", nil},
	{"bearer_token_miss/bearers", "Bearers abcdef0123456789abcdef", nil},

	// JWTs.
	{"jwt/json", `{"id_token":"` + jwtToken + `"}`, one(KindJWT)},
	{"jwt/unsigned", jwtHeader + "." + b64(`{"sub":"x"}`) + ".", one(KindJWT)},
	{"jwt/jwe", b64(`{"alg":"RSA-OAEP","enc":"A256GCM"}`) + ".a1b2.c3d4.e5f6.g7h8", one(KindJWT)},
	{"jwt_miss/no_alg", b64(`{"not":"jwt"}`) + "." + b64(`{"x":1}`) + ".abc", nil},
	{"jwt_miss/one_part", jwtHeader, nil},
	{"jwt_miss/two_parts", jwtHeader + ".", nil},
	{"jwt_miss/bad_base64", "eyJ!.abc.def", nil},

	// GitHub, Slack, Stripe.
	{"github_token/ghp", `{"token":"` + ghToken + `"}`, one(KindGitHubToken)},
	{"github_token/ghs", "ghs_" + ghToken[4:], one(KindGitHubToken)},
	{"github_token/fine_grained", ghFine, one(KindGitHubToken)},
	{"github_token_miss/35", ghToken[:len(ghToken)-1], nil},
	{"github_token_miss/ghx", "ghx_" + ghToken[4:], nil},
	{"slack_token/bot", slackToken, one(KindSlackToken)},
	{"slack_token/user", "xoxp-" + slackToken[5:], one(KindSlackToken)},
	{"slack_token_miss/xoxc", "xoxc-" + slackToken[5:], nil},
	{"slack_token_miss/short", "xoxb-12345", nil},
	{"stripe_key/sk_live", `{"k":"` + stripeKey + `"}`, one(KindStripeKey)},
	{"stripe_key/rk_live", stripeRKey, one(KindStripeKey)},
	{"stripe_key_miss/test", "sk_test_" + stripeKey[8:], nil},
	{"stripe_key_miss/short", "sk_live_abc123", nil},

	// Several kinds, in Kind order whatever the body order.
	{"mixed/order", "ssn 123-45-6789 card 4111111111111111 key " + awsKeyID, []Finding{{KindCard, 1}, {KindSSN, 1}, {KindAWSAccessKey, 1}}},
}

func TestScan(t *testing.T) {
	s := New(Options{})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := s.Scan([]byte(tc.in)); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Scan(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

func TestRedactCases(t *testing.T) {
	s := New(Options{})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := []byte(tc.in)
			orig := bytes.Clone(in)
			out, got := s.Redact(in)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Redact(%q) findings = %v, want %v", tc.in, got, tc.want)
			}
			if !bytes.Equal(in, orig) {
				t.Errorf("Redact(%q) modified its input to %q", orig, in)
			}
			if tc.want == nil && !sameSlice(out, in) {
				t.Errorf("Redact(%q) = %q, want the input itself", tc.in, out)
			}
			if f := s.Scan(out); f != nil {
				t.Errorf("Scan(Redact(%q)) = %v, want nothing", tc.in, f)
			}
		})
	}
}

func sameSlice(a, b []byte) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

func TestRedactOutput(t *testing.T) {
	s := New(Options{Exact: [][]byte{[]byte("s3cr3t-value-42")}})
	tests := []struct{ name, in, want string }{
		{"card_middle", `{"pan":"4111 1111 1111 1111","x":1}`, `{"pan":"[REDACTED:card]","x":1}`},
		{"card_start", "4111111111111111 tail", "[REDACTED:card] tail"},
		{"card_end", "head 4111111111111111", "head [REDACTED:card]"},
		{"card_whole", "4111111111111111", "[REDACTED:card]"},
		{"ssn_end", "ssn:123-45-6789", "ssn:[REDACTED:ssn]"},
		{"bearer_keeps_scheme", "Authorization: Bearer abcdef0123456789abcdef\r\n", "Authorization: Bearer [REDACTED:bearer_token]\r\n"},
		{"aws_secret_keeps_label", "aws_secret_access_key=" + awsSecret + "\n", "aws_secret_access_key=[REDACTED:aws_secret_key]\n"},
		{"pem_whole_block", "a\n" + pemKey + "\nb", "a\n[REDACTED:private_key]\nb"},
		{"pem_truncated_in_json", `{"k":"-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIIrY","n":1}`, `{"k":"[REDACTED:private_key]","n":1}`},
		{"exact_inside_word", "xx" + "s3cr3t-value-42" + "yy", "xx[REDACTED:secret]yy"},
		{"adjacent", "4111111111111111 123-45-6789", "[REDACTED:card] [REDACTED:ssn]"},
		{"utf8_kept", "ключ 4111111111111111 ✓\x00\xff", "ключ [REDACTED:card] ✓\x00\xff"},
		{"many", strings.Repeat("4111111111111111,", 3), strings.Repeat("[REDACTED:card],", 3)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, f := s.Redact([]byte(tc.in))
			if string(out) != tc.want {
				t.Errorf("Redact(%q) = %q, want %q", tc.in, out, tc.want)
			}
			if f == nil {
				t.Errorf("Redact(%q) findings = nil, want some", tc.in)
			}
		})
	}
}

func TestRedactOverlap(t *testing.T) {
	tests := []struct {
		name  string
		exact []string
		in    string
		want  string
		finds []Finding
	}{
		{
			name:  "exact_inside_bearer",
			exact: []string{"0123456789abcdefXYZ"},
			in:    "Bearer abcdef0123456789abcdefXYZ end",
			want:  "Bearer [REDACTED:bearer_token] end",
			finds: []Finding{{KindBearerToken, 1}, {KindSecret, 1}},
		},
		{
			name:  "exact_spanning_card",
			exact: []string{"pan=4111111111111111;"},
			in:    "x pan=4111111111111111; y",
			want:  "x [REDACTED:secret] y",
			finds: []Finding{{KindCard, 1}, {KindSecret, 1}},
		},
		{
			name:  "overlapping_exacts",
			exact: []string{"abcdefgh12", "gh12345678"},
			in:    "<abcdefgh12345678>",
			want:  "<[REDACTED:secret]>",
			finds: []Finding{{KindSecret, 2}},
		},
		{
			name:  "card_exposed_by_exact",
			exact: []string{"SECRETVALUE"},
			in:    "SECRETVALUE4111111111111111",
			want:  "[REDACTED:secret][REDACTED:card]",
			finds: []Finding{{KindCard, 1}, {KindSecret, 1}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var ex [][]byte
			for _, e := range tc.exact {
				ex = append(ex, []byte(e))
			}
			s := New(Options{Exact: ex})
			out, f := s.Redact([]byte(tc.in))
			if string(out) != tc.want {
				t.Errorf("Redact(%q) = %q, want %q", tc.in, out, tc.want)
			}
			if !reflect.DeepEqual(f, tc.finds) {
				t.Errorf("Redact(%q) findings = %v, want %v", tc.in, f, tc.finds)
			}
			if got := s.Scan([]byte(tc.in)); !reflect.DeepEqual(got, tc.finds) {
				t.Errorf("Scan(%q) = %v, want %v (what Redact reports)", tc.in, got, tc.finds)
			}
		})
	}
}

func TestExact(t *testing.T) {
	secret := `pa"ss/word<x>&y`
	s := New(Options{Exact: [][]byte{
		[]byte(secret),
		[]byte("short"),           // below MinExactLen: ignored
		[]byte("REDACTED:secret"), // inside the marker: ignored
		[]byte("tok-0123456789"),
		[]byte("tok-0123456789"), // duplicate
	}})
	js, err := json.Marshal(map[string]string{"v": secret})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		in   string
		want []Finding
	}{
		{"raw", "value " + secret + " end", one(KindSecret)},
		{"json_escaped", string(js), one(KindSecret)},
		{"json_no_html_escape", `{"v":"pa\"ss/word<x>&y"}`, one(KindSecret)},
		{"twice", "tok-0123456789tok-0123456789", []Finding{{KindSecret, 2}}},
		{"short_ignored", "a short one", nil},
		{"marker_text_ignored", "REDACTED:secret", nil},
		{"prefix_only", "tok-012345678", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := s.Scan([]byte(tc.in)); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Scan(%q) = %v, want %v", tc.in, got, tc.want)
			}
			out, _ := s.Redact([]byte(tc.in))
			if bytes.Contains(out, []byte(secret)) || bytes.Contains(out, []byte("tok-0123456789")) {
				t.Errorf("Redact(%q) = %q still holds a secret", tc.in, out)
			}
		})
	}
}

func TestOptionsCopied(t *testing.T) {
	v := []byte("original-secret-1")
	opt := Options{Exact: [][]byte{v}}
	s := New(opt)
	copy(v, "changed!")
	opt.Exact[0] = []byte("other-secret-xyz")
	if got := s.Scan([]byte("original-secret-1")); !reflect.DeepEqual(got, one(KindSecret)) {
		t.Errorf("Scan after changing Options = %v, want %v", got, one(KindSecret))
	}
	if got := s.Scan([]byte("changed!-secret-1")); got != nil {
		t.Errorf("Scan(changed value) = %v, want nil", got)
	}
}

func TestMarker(t *testing.T) {
	tests := []struct{ marker, in, want string }{
		{"", "4111111111111111", "[REDACTED:card]"},
		{"***", "a 4111111111111111 123-45-6789", "a *** ***"},
		{"<<kind>>", "a 4111111111111111", "a <card>"},
		{"[<kind>|<kind>]", "x 123-45-6789", "x [ssn|ssn]"},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%q", tc.marker), func(t *testing.T) {
			out, _ := New(Options{Marker: tc.marker}).Redact([]byte(tc.in))
			if string(out) != tc.want {
				t.Errorf("Redact(%q) with marker %q = %q, want %q", tc.in, tc.marker, out, tc.want)
			}
		})
	}
}

func TestMarkerDetectedPanics(t *testing.T) {
	for _, m := range []string{"4111111111111111", "tok0123456789abcdefgh", awsKeyID} {
		t.Run(m, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("New(Options{Marker: %q}) did not panic", m)
				}
			}()
			New(Options{Marker: m})
		})
	}
}

func TestFindingsNeverHoldValues(t *testing.T) {
	s := New(Options{Exact: [][]byte{[]byte("hunter2-hunter2")}})
	in := "4111111111111111 " + awsKeyID + " hunter2-hunter2 " + jwtToken
	got := fmt.Sprintf("%+v", s.Scan([]byte(in)))
	for _, v := range []string{"4111111111111111", awsKeyID, "hunter2", jwtToken} {
		if strings.Contains(got, v) {
			t.Errorf("findings %s contain the matched value %q", got, v)
		}
	}
}

func TestCleanNoAlloc(t *testing.T) {
	s := New(Options{Exact: [][]byte{[]byte("exact-secret-value-1"), []byte("exact-secret-value-2")}})
	body := cleanJSON(1024)
	if f := s.Scan(body); f != nil {
		t.Fatalf("Scan(clean JSON) = %v, want nil", f)
	}
	if n := testing.AllocsPerRun(100, func() { s.Scan(body) }); n != 0 {
		t.Errorf("Scan(clean JSON) allocs = %v, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() {
		if out, _ := s.Redact(body); !sameSlice(out, body) {
			panic("copied")
		}
	}); n != 0 {
		t.Errorf("Redact(clean JSON) allocs = %v, want 0", n)
	}
}

func TestPEMManyBeginsLinear(t *testing.T) {
	// Many BEGIN lines without END must each be found, and END must be
	// searched for once, not once per BEGIN.
	unit := "-----BEGIN RSA PRIVATE KEY-----\"x\n"
	in := strings.Repeat(unit, 2000)
	got := New(Options{}).Scan([]byte(in))
	want := []Finding{{KindPrivateKey, 2000}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Scan(2000 BEGIN lines) = %v, want %v", got, want)
	}
}

func TestConcurrent(t *testing.T) {
	s := New(Options{Exact: [][]byte{[]byte("shared-secret-123")}})
	in := []byte("4111111111111111 shared-secret-123 " + awsKeyID)
	want := "[REDACTED:card] [REDACTED:secret] [REDACTED:aws_access_key]"
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				if out, _ := s.Redact(in); string(out) != want {
					errs <- string(out)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("concurrent Redact = %q, want %q", e, want)
	}
}

// cleanJSON returns a typical API answer of about n bytes with no findings:
// ids, UUIDs, timestamps, prices, phone numbers and order numbers.
func cleanJSON(n int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"data":[`)
	for i := 0; b.Len() < n-200; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%d,"uuid":"123e4567-e89b-12d3-a456-%012d","created_at":"2024-01-%02dT10:30:00Z","order":"ORD-2024-%06d","amount":%d.%02d,"currency":"EUR","status":"shipped","phone":"+1 415 555 %04d","email":"user%d@example.com"}`,
			1000+i, 426614174000+i, 1+i%28, 123+i, 19+i, i%100, 2671+i, i)
	}
	b.WriteString(`],"page":{"next":"/v1/orders?cursor=abc123","size":50},"version":"1.4.2"}`)
	return b.Bytes()
}

// TestExactEncoded is the attacker's side of exact matching: a function that
// holds a secret returns it base64-, base64url- or hex-encoded, alone or
// inside a longer encoded blob at any offset. Every variant must be found,
// and in text redaction must remove the evidence.
func TestExactEncoded(t *testing.T) {
	secret := []byte("sk_" + "live_" + "4eC39HqLyjWDarjtT1zdp7dc-very-secret")
	s := New(Options{Exact: [][]byte{secret}, ExactOnly: true})
	encs := map[string]func([]byte) string{
		"base64":        base64.StdEncoding.EncodeToString,
		"base64 raw":    base64.RawStdEncoding.EncodeToString,
		"base64url":     base64.URLEncoding.EncodeToString,
		"base64url raw": base64.RawURLEncoding.EncodeToString,
		"hex":           hex.EncodeToString,
		"HEX":           func(b []byte) string { return strings.ToUpper(hex.EncodeToString(b)) },
		"plain":         func(b []byte) string { return string(b) },
	}
	for name, enc := range encs {
		for pre := 0; pre < 5; pre++ {
			for post := 0; post < 4; post++ {
				stream := append(append(bytes.Repeat([]byte{0xfb}, pre), secret...), bytes.Repeat([]byte{'?'}, post)...)
				body := []byte(`{"data":"` + enc(stream) + `"}`)
				if f := s.Scan(body); len(f) != 1 || f[0].Kind != KindSecret {
					t.Errorf("%s with %d bytes before and %d after: Scan = %v, want the secret", name, pre, post, f)
				}
				if out, _ := s.Redact(body); s.Scan(out) != nil || bytes.Equal(out, body) {
					t.Errorf("%s with %d bytes before and %d after: redaction left the secret or changed nothing", name, pre, post)
				}
			}
		}
	}
}

func TestExactOnlySkipsPatterns(t *testing.T) {
	card := []byte(`{"card":"4111 1111 1111 1111","token":"` + "ghp" + "_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789" + `"}`)
	if f := New(Options{ExactOnly: true}).Scan(card); f != nil {
		t.Errorf("ExactOnly Scan(card and token) = %v, want nothing", f)
	}
	if f := New(Options{}).Scan(card); len(f) == 0 {
		t.Errorf("Scan(card and token) = nil, want findings")
	}
}

func TestEncodedFormsShortValues(t *testing.T) {
	for _, f := range EncodedForms([]byte("12345678")) {
		if len(f) < MinExactLen {
			t.Errorf("EncodedForms gave %d-byte form, want at least %d", len(f), MinExactLen)
		}
	}
}

// TestExactEscapedForms: the escapes a careless function's URL or JSON
// encoder produces still reveal the value.
func TestExactEscapedForms(t *testing.T) {
	secret := "p@ss/w0rd+key=value&x y"
	s := New(Options{Exact: [][]byte{[]byte(secret)}, ExactOnly: true})
	var all strings.Builder
	for _, c := range []byte(secret) {
		fmt.Fprintf(&all, `\u%04x`, c)
	}
	for name, body := range map[string]string{
		"query escape": "https://x.example/?t=" + url.QueryEscape(secret),
		"path escape":  "https://x.example/" + url.PathEscape(secret),
		"json \\/":     `{"v":"` + strings.ReplaceAll(secret, "/", `\/`) + `"}`,
		"json \\u00XX": `{"v":"` + all.String() + `"}`,
	} {
		if f := s.Scan([]byte(body)); len(f) == 0 {
			t.Errorf("%s: the secret was not found", name)
		}
	}
}
