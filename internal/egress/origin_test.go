package egress

import "testing"

func TestParseGrant(t *testing.T) {
	ok := []struct {
		in   string
		want Origin
		str  string
	}{
		{"https://api.stripe.com", Origin{"https", "api.stripe.com", 443, false}, "https://api.stripe.com"},
		{"https://api.stripe.com:443", Origin{"https", "api.stripe.com", 443, false}, "https://api.stripe.com"},
		{"https://*.example.com:8443", Origin{"https", "example.com", 8443, true}, "https://*.example.com:8443"},
		{"http://10.0.0.5", Origin{"http", "10.0.0.5", 80, false}, "http://10.0.0.5"},
		{"http://[::1]:8080", Origin{"http", "::1", 8080, false}, "http://[::1]:8080"},
		{"http://[0:0::1]", Origin{"http", "::1", 80, false}, "http://[::1]"},
		{"https://xn--pple-43d.com", Origin{"https", "xn--pple-43d.com", 443, false}, "https://xn--pple-43d.com"},
	}
	for _, tt := range ok {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseGrant(tt.in)
			if err != nil || got != tt.want {
				t.Fatalf("ParseGrant(%q) = %+v, %v, want %+v", tt.in, got, err, tt.want)
			}
			if s := got.String(); s != tt.str {
				t.Errorf("ParseGrant(%q).String() = %q, want %q", tt.in, s, tt.str)
			}
		})
	}
	bad := map[string]string{
		"empty":              "",
		"bare star":          "*",
		"https star":         "https://*",
		"no scheme":          "api.stripe.com",
		"ftp":                "ftp://files.example.com",
		"uppercase scheme":   "HTTPS://api.stripe.com",
		"uppercase host":     "https://API.stripe.com",
		"path":               "https://api.stripe.com/v1",
		"trailing slash":     "https://api.stripe.com/",
		"query":              "https://api.stripe.com?x=1",
		"fragment":           "https://api.stripe.com#x",
		"userinfo":           "https://user:pw@api.stripe.com",
		"percent":            "https://api%2estripe.com",
		"idn":                "https://аpple.com",
		"space":              "https://api .stripe.com",
		"backslash":          `https://api.stripe.com\`,
		"control":            "https://api.stripe.com\x00",
		"port zero":          "https://a.com:0",
		"port too big":       "https://a.com:65536",
		"port leading zero":  "https://a.com:0443",
		"port empty":         "https://a.com:",
		"wildcard tld":       "https://*.com",
		"double wildcard":    "https://*.*.example.com",
		"inner wildcard":     "https://api.*.example.com",
		"wildcard ip":        "https://*.10.0.0.5",
		"decimal ip":         "http://2130706433",
		"octal ip":           "http://0177.0.0.1",
		"hex ip":             "http://0x7f.1",
		"short ip":           "http://127.1",
		"unbracketed v6":     "http://::1",
		"zone":               "http://[fe80::1%25eth0]",
		"v4 in brackets":     "http://[127.0.0.1]",
		"trailing dot":       "https://api.stripe.com.",
		"empty label":        "https://api..stripe.com",
		"hyphen label":       "https://-api.stripe.com",
		"underscore":         "https://api_x.stripe.com",
		"missing bracket":    "http://[::1",
		"junk after bracket": "http://[::1]x",
	}
	for name, in := range bad {
		t.Run(name, func(t *testing.T) {
			if got, err := ParseGrant(in); err == nil {
				t.Errorf("ParseGrant(%q) = %+v, want an error", in, got)
			}
		})
	}
}

func TestNewPolicyRejectsBadGrant(t *testing.T) {
	if _, err := NewPolicy([]string{"https://ok.example.com", "*"}); err == nil {
		t.Fatal("NewPolicy with a bare * = nil error, want an error")
	}
	p, err := NewPolicy(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Check("https://example.com/"); err == nil {
		t.Error("empty policy allowed https://example.com/, want every destination denied")
	}
}
