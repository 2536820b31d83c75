package manifest

import "time"

// ABI names how warden talks to a function's module.
type ABI string

const (
	// ABIReactor is a module built with the warden SDK (-buildmode=c-shared,
	// //go:wasmexport). Instances are pooled and reused within one version.
	ABIReactor ABI = "reactor"
	// ABIWagi is a WASI command module following the WAGI/CGI convention.
	// Every request gets a fresh instance.
	ABIWagi ABI = "wagi"
)

// Defaults applied by Parse to fields the manifest leaves out.
const (
	DefaultNamespace    = "default"
	DefaultMemory       = 64 << 20 // 64 MiB
	DefaultTimeout      = 5 * time.Second
	DefaultConcurrency  = 50
	DefaultRequestBody  = 1 << 20 // 1 MiB
	DefaultResponseBody = 6 << 20 // 6 MiB
	DefaultWAFMode      = "block"
	DefaultParanoia     = 1
	DefaultDLP          = "redact"
	DefaultRateLimitBy  = "client" // RateLimit.Burst defaults to RateLimit.Rate
)

// Manifest is a parsed and validated warden.yaml. Parse fills every default,
// so a consumer never has to. A Manifest is immutable once returned: callers
// must not modify it (it is shared between goroutines).
//
// # Notes
//   - Empty collections are nil: HTTP, Env, Permissions.Secrets, .KV,
//     .Egress and Route.Scopes are either nil or non-empty.
//   - Every value is within the bounds documented by its field and by the
//     Min* and Max* constants.
type Manifest struct {
	Name        string            `json:"name"`      // [a-z][a-z0-9-]{0,62}, not ending with -
	Namespace   string            `json:"namespace"` // same syntax; DefaultNamespace when left out
	Artifact    string            `json:"artifact"`  // as written: relative to the manifest file (see ArtifactPath)
	ABI         ABI               `json:"abi"`
	Limits      Limits            `json:"limits"`
	HTTP        []Route           `json:"http,omitempty"` // no two routes conflict on a ServeMux
	WAF         WAF               `json:"waf"`
	Permissions Permissions       `json:"permissions"`
	Env         map[string]string `json:"env,omitempty"` // no key starts with WARDEN_
}

// Limits are the per-function resource ceilings.
type Limits struct {
	Memory       int64         `json:"memory"`       // bytes of linear memory, a multiple of 64 KiB, 1 MiB..4 GiB
	Timeout      time.Duration `json:"timeout"`      // wall clock per invocation, 1ms..15m
	Concurrency  int           `json:"concurrency"`  // in-flight invocations, 1..10000
	RequestBody  int64         `json:"requestBody"`  // bytes, 1..100 MiB
	ResponseBody int64         `json:"responseBody"` // bytes, 1..100 MiB
}

// Auth kinds for Route.Auth.
const (
	AuthAPIKey = "apikey"
	AuthNone   = "none"
	AuthMTLS   = "mtls"
	AuthJWT    = "jwt" // written as jwt:<issuer-name>; Route.Issuer holds the name
)

// Route is one HTTP trigger.
type Route struct {
	Pattern   string     `json:"route"`  // net/http ServeMux pattern as written, e.g. "POST /orders"
	Method    string     `json:"method"` // "" when the pattern has none
	Path      string     `json:"path"`
	Auth      string     `json:"auth"`             // AuthAPIKey (default), AuthNone, AuthMTLS or AuthJWT
	Issuer    string     `json:"issuer,omitempty"` // for AuthJWT
	Scopes    []string   `json:"scopes,omitempty"` // [a-z0-9][a-z0-9:._-]*; none when Auth is AuthNone
	RateLimit *RateLimit `json:"rateLimit,omitempty"`
	Schema    string     `json:"schema,omitempty"` // path relative to the manifest file
	DLP       string     `json:"dlp"`              // redact (default) | block | off
}

// RateLimit is a token bucket: Rate tokens per Per, at most Burst at once.
type RateLimit struct {
	Rate  int           `json:"rate"`  // 1..MaxRateCount
	Per   time.Duration `json:"per"`   // time.Second, time.Minute or time.Hour
	Burst int           `json:"burst"` // 1..MaxRateCount; Rate when left out
	By    string        `json:"by"`    // client (default) | ip | key
}

// WAF configures the web application firewall for the function's routes.
type WAF struct {
	Mode     string `json:"mode"`     // block (default) | detect | off
	Paranoia int    `json:"paranoia"` // 1..4, default 1
}

// Permissions are the function's grants; everything not listed is denied.
type Permissions struct {
	Secrets []string          `json:"secrets,omitempty"` // [A-Z][A-Z0-9_]*, no repeats
	KV      map[string]string `json:"kv,omitempty"`      // bucket ([a-z][a-z0-9-_]{0,62}) -> read | write
	Egress  []string          `json:"egress,omitempty"`  // origins as written: http(s)://host[:port], host maybe *.domain
}
