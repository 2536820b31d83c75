package cli

import (
	"io"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"warden/internal/config"
	"warden/internal/server"
)

func serverCmd(g *globals, stdout io.Writer) *cobra.Command {
	cfg := config.Default()
	var logLevel string
	c := &cobra.Command{
		Use:   "server",
		Short: "Run the warden server",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if g.data != "" {
				cfg.DataDir = g.data
			}
			if err := cfg.Validate(); err != nil {
				return usageErr(err.Error())
			}
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(logLevel)); err != nil {
				return usageErr("--log-level: " + err.Error())
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
			ctx, stop := signalContext()
			defer stop()
			return server.Run(ctx, cfg, server.Options{Logger: log}, stdout)
		},
	}
	f := c.Flags()
	f.StringVar(&cfg.Listen, "listen", cfg.Listen, "address for function traffic")
	f.StringVar(&cfg.AdminListen, "admin-listen", cfg.AdminListen, "address for the admin API")
	f.StringVar(&cfg.TLSCert, "tls-cert", "", "server certificate (PEM); default: generated in DATA/tls")
	f.StringVar(&cfg.TLSKey, "tls-key", "", "server key (PEM)")
	f.BoolVar(&cfg.InsecureHTTP, "insecure-http", false, "serve plain HTTP (loopback addresses only)")
	f.StringVar(&cfg.ClientCA, "client-ca", "", "PEM file of CAs whose client certificates routes with auth: mtls accept")
	f.IntVar(&cfg.MaxConnsPerIP, "max-conns-per-ip", cfg.MaxConnsPerIP, "concurrent connections per client IP on each listener (0: no limit)")
	f.IntVar(&cfg.IPv6Prefix, "ipv6-prefix", cfg.IPv6Prefix, "IPv6 clients are counted per network of this prefix length, in rate limits and connection bounds (32 to 128)")
	f.IntVar(&cfg.IPRate, "ip-rate", cfg.IPRate, "requests per second per client IP, burst twice that (0: off)")
	f.IntVar(&cfg.KeyRate, "key-rate", cfg.KeyRate, "requests per second per API key or token subject, burst twice that (0: off)")
	f.StringVar(&cfg.RedisURL, "redis", "", "Redis URL for rate limits shared by several nodes (default: in memory)")
	f.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", cfg.ShutdownTimeout, "how long to drain in-flight requests on shutdown")
	f.DurationVar(&cfg.FlushTimeout, "shutdown-flush-timeout", cfg.FlushTimeout, "how long shutdown then has to store pending events, after the drain")
	f.Var(config.Days{D: &cfg.EventsRetention}, "events-retention", "how long per-request events (refusals, limits, traps) are kept, e.g. 30d")
	f.Var(config.Days{D: &cfg.EventsAuditRetention}, "events-audit-retention", "how long admin actions, deploys, grant changes and secret reads are kept, e.g. 400d")
	f.Int64Var(&cfg.EventsMaxBytes, "events-max-bytes", cfg.EventsMaxBytes, "total size of stored events; over it the oldest per-request events are pruned first")
	f.StringVar(&cfg.MasterKeyFile, "master-key-file", "", "file (0600) holding the master key, base64; default: env "+config.MasterKeyEnv+", else keys generated in DATA/keys (development only)")
	f.StringVar(&cfg.PreviousMasterKeyFile, "previous-master-key-file", "", "the master key being rotated away from; values it wraps are re-wrapped at start (env "+config.PreviousMasterKeyEnv+")")
	f.Int64Var(&cfg.KVMaxBucket, "kv-max-bucket", 0, "live bytes per KV bucket (default 64 MiB)")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	return c
}
