// Package config owns the server's configuration: defaults, then flags, then
// validation, then the whole value is handed to the server. A Config is a
// value: it is never changed after Validate.
//
// config never opens files or sockets; it only describes them.
package config

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Config is the server's configuration.
type Config struct {
	DataDir         string        // SQLite database, TLS material, compilation cache, admin token
	Listen          string        // function traffic
	AdminListen     string        // the admin API; never the same address as Listen
	TLSCert         string        // optional operator-supplied certificate (PEM) ...
	TLSKey          string        // ... and its key; both or neither
	InsecureHTTP    bool          // plain HTTP; refused on anything but loopback
	ClientCA        string        // PEM bundle of CAs whose client certificates routes with auth mtls accept
	MaxConnsPerIP   int           // concurrent connections per client IP on each listener; 0 = no limit
	IPv6Prefix      int           // an IPv6 client is its network of this prefix length, for rate limits and connection bounds (32..128)
	IPRate          int           // requests per second per client IP on the public listener, burst twice that; 0 = off
	KeyRate         int           // requests per second per credential (API key, token subject), burst twice that; 0 = off
	RedisURL        string        // shared rate-limit state for several nodes; "" = in memory
	ShutdownTimeout time.Duration // how long graceful shutdown waits for in-flight requests
	// FlushTimeout is how long shutdown then has to store pending events
	// and usage records: its own deadline, after the drain, so a drain
	// that used up ShutdownTimeout does not cost the events.
	FlushTimeout time.Duration
	// EventsRetention keeps per-request events (refusals, limits, traps);
	// EventsAuditRetention keeps admin actions, deploys, grant changes,
	// secret reads and pruning records. EventsMaxBytes bounds the stored
	// events' total size; over it the oldest per-request events go first.
	EventsRetention      time.Duration
	EventsAuditRetention time.Duration
	EventsMaxBytes       int64
	// MasterKeyFile holds the master key that wraps every secret's and KV
	// value's data key; "" = the environment (MasterKeyEnv), else keys
	// generated and kept in DATA/keys (a dev default, with a warning).
	MasterKeyFile string
	// PreviousMasterKeyFile is the master key being rotated away from:
	// values still wrapped by it are readable and re-wrapped at start.
	PreviousMasterKeyFile string
	// KVMaxBucket bounds the live bytes of one KV bucket; 0 = 64 MiB.
	KVMaxBucket int64
}

// Environment variables holding master keys (base64) when no file is given.
const (
	MasterKeyEnv         = "WARDEN_MASTER_KEY"
	PreviousMasterKeyEnv = "WARDEN_PREVIOUS_MASTER_KEY"
)

// Default returns the embedded defaults.
func Default() Config {
	return Config{
		DataDir:         "./warden-data",
		Listen:          "127.0.0.1:8443",
		AdminListen:     "127.0.0.1:8444",
		ShutdownTimeout: 30 * time.Second,
		FlushTimeout:    10 * time.Second,
		MaxConnsPerIP:   256,
		IPv6Prefix:      64, // one subscriber's network (RFC 6177): its addresses share one limit
		// Per-request events for a month, the audit trail for 400 days
		// (a year plus the time to notice), 1 GiB in all.
		EventsRetention:      30 * 24 * time.Hour,
		EventsAuditRetention: 400 * 24 * time.Hour,
		EventsMaxBytes:       1 << 30,
		IPRate:               200,
		KeyRate:              1000,
	}
}

// Validate reports every problem with c.
func (c Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("--data must not be empty"))
	}
	for _, a := range []struct{ flag, addr string }{{"--listen", c.Listen}, {"--admin-listen", c.AdminListen}} {
		host, port, err := net.SplitHostPort(a.addr)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %q: want host:port", a.flag, a.addr))
			continue
		}
		if c.InsecureHTTP && !loopback(host) {
			errs = append(errs, fmt.Errorf("%s %q: --insecure-http is allowed only on a loopback address", a.flag, a.addr))
		}
		_ = port
	}
	if c.Listen == c.AdminListen && c.Listen != "" && !hasZeroPort(c.Listen) {
		errs = append(errs, errors.New("--listen and --admin-listen must differ: the admin API never shares a port with function traffic"))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("--tls-cert and --tls-key go together"))
	}
	if c.InsecureHTTP && c.ClientCA != "" {
		errs = append(errs, errors.New("--client-ca needs TLS: it cannot go with --insecure-http"))
	}
	if c.IPRate < 0 || c.KeyRate < 0 {
		errs = append(errs, errors.New("--ip-rate and --key-rate must not be negative"))
	}
	if c.MaxConnsPerIP < 0 {
		errs = append(errs, errors.New("--max-conns-per-ip must not be negative"))
	}
	if c.IPv6Prefix < 32 || c.IPv6Prefix > 128 {
		errs = append(errs, fmt.Errorf("--ipv6-prefix %d: want 32 to 128", c.IPv6Prefix))
	}
	if c.InsecureHTTP && c.TLSCert != "" {
		errs = append(errs, errors.New("--insecure-http and --tls-cert exclude each other"))
	}
	if c.PreviousMasterKeyFile != "" && c.MasterKeyFile == "" {
		errs = append(errs, errors.New("--previous-master-key-file needs --master-key-file (the key rotated to)"))
	}
	if c.KVMaxBucket < 0 {
		errs = append(errs, errors.New("--kv-max-bucket must not be negative"))
	}
	if c.ShutdownTimeout <= 0 || c.FlushTimeout <= 0 {
		errs = append(errs, errors.New("--shutdown-timeout and --shutdown-flush-timeout must be positive"))
	}
	if c.EventsRetention < time.Hour || c.EventsAuditRetention < c.EventsRetention {
		errs = append(errs, errors.New("--events-retention must be at least 1h, and --events-audit-retention at least as long"))
	}
	if c.EventsMaxBytes < 1<<20 {
		errs = append(errs, errors.New("--events-max-bytes must be at least 1 MiB"))
	}
	return errors.Join(errs...)
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func hasZeroPort(addr string) bool {
	_, port, _ := net.SplitHostPort(addr)
	return port == "0"
}

// Paths inside the data directory.
func (c Config) TLSDir() string         { return filepath.Join(c.DataDir, "tls") }
func (c Config) DBPath() string         { return filepath.Join(c.DataDir, "warden.db") }
func (c Config) CacheDir() string       { return filepath.Join(c.DataDir, "cache") }
func (c Config) KeyDir() string         { return filepath.Join(c.DataDir, "keys") }
func (c Config) AdminTokenPath() string { return filepath.Join(c.DataDir, "admin.token") }

// ParseDays parses a Go duration, also accepting a whole number of days
// ("30d", at most 3650).
func ParseDays(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n <= 0 || n > 3650 {
			return 0, fmt.Errorf("bad number of days %q", d)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

// Days is a flag value for a duration written as ParseDays reads it.
type Days struct{ D *time.Duration }

func (d Days) String() string {
	if d.D == nil {
		return ""
	}
	if *d.D%(24*time.Hour) == 0 && *d.D > 0 {
		return strconv.FormatInt(int64(*d.D/(24*time.Hour)), 10) + "d"
	}
	return d.D.String()
}

func (d Days) Set(s string) error {
	v, err := ParseDays(s)
	if err != nil {
		return err
	}
	*d.D = v
	return nil
}

func (Days) Type() string { return "duration" }
