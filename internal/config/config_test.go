package config

import (
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	cases := []struct {
		name string
		edit func(*Config)
		want string // substring of the error; "" means valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"insecure on loopback", func(c *Config) { c.InsecureHTTP = true }, ""},
		{"insecure on localhost", func(c *Config) { c.InsecureHTTP = true; c.Listen = "localhost:1" }, ""},
		{"insecure on all interfaces", func(c *Config) { c.InsecureHTTP = true; c.Listen = "0.0.0.0:8443" }, "only on a loopback"},
		{"insecure on a LAN address", func(c *Config) { c.InsecureHTTP = true; c.AdminListen = "192.168.1.5:8444" }, "only on a loopback"},
		{"insecure with empty host", func(c *Config) { c.InsecureHTTP = true; c.Listen = ":8443" }, "only on a loopback"},
		{"same port", func(c *Config) { c.AdminListen = c.Listen }, "must differ"},
		{"both port 0", func(c *Config) { c.Listen, c.AdminListen = "127.0.0.1:0", "127.0.0.1:0" }, ""},
		{"cert without key", func(c *Config) { c.TLSCert = "a.pem" }, "go together"},
		{"bad address", func(c *Config) { c.Listen = "nonsense" }, "want host:port"},
		{"no data dir", func(c *Config) { c.DataDir = "" }, "--data"},
		{"ipv6 prefix /48", func(c *Config) { c.IPv6Prefix = 48 }, ""},
		{"ipv6 prefix /128", func(c *Config) { c.IPv6Prefix = 128 }, ""},
		{"ipv6 prefix /32", func(c *Config) { c.IPv6Prefix = 32 }, ""},
		{"ipv6 prefix /31", func(c *Config) { c.IPv6Prefix = 31 }, "--ipv6-prefix"},
		{"ipv6 prefix /129", func(c *Config) { c.IPv6Prefix = 129 }, "--ipv6-prefix"},
		{"ipv6 prefix 0", func(c *Config) { c.IPv6Prefix = 0 }, "--ipv6-prefix"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.edit(&c)
			err := c.Validate()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
}
