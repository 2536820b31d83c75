package capability

import (
	"strings"
	"testing"
	"time"

	"warden/internal/manifest"
	"warden/internal/store"
)

func TestReviewGrants(t *testing.T) {
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	created := now.Add(-90 * 24 * time.Hour)
	perms := manifest.Permissions{
		Secrets: []string{"STRIPE_KEY", "UNUSED_KEY", "OLD_KEY"},
		KV:      map[string]string{"orders": "write", "catalog": "read", "cache": "write", "idle": "read", "stale": "write"},
		Egress:  []string{"https://api.stripe.com", "https://unused.example"},
	}
	use := func(kind, target, mode string, version int, last time.Time) store.GrantUse {
		return store.GrantUse{Namespace: "default", Function: "shop", Version: version, Kind: kind, Target: target, Mode: mode,
			FirstUsed: last.Add(-time.Hour), LastUsed: last, Count: 3}
	}
	recent := now.Add(-24 * time.Hour)
	old := now.Add(-60 * 24 * time.Hour)
	uses := []store.GrantUse{
		use(store.GrantSecret, "STRIPE_KEY", store.ModeUse, 1, recent),
		use(store.GrantSecret, "OLD_KEY", store.ModeUse, 1, old),
		use(store.GrantKV, "orders", store.ModeRead, 2, recent),
		use(store.GrantKV, "orders", store.ModeWrite, 2, recent),
		use(store.GrantKV, "catalog", store.ModeRead, 2, recent),
		use(store.GrantKV, "cache", store.ModeRead, 2, recent), // write grant, reads only
		use(store.GrantKV, "stale", store.ModeRead, 2, recent),
		use(store.GrantKV, "stale", store.ModeWrite, 2, old), // writes, but not in the window
		use(store.GrantEgress, "https://api.stripe.com", store.ModeUse, 2, recent),
		use(store.GrantSecret, "UNUSED_KEY", store.ModeUse, 3, recent), // a later version: does not count
	}

	t.Run("never used only", func(t *testing.T) {
		r := ReviewGrants("default", "shop", 2, created, perms, uses, 0, now)
		want := map[string]string{
			"secret/STRIPE_KEY": "", "secret/UNUSED_KEY": ProblemNeverUsed, "secret/OLD_KEY": "",
			"kv/orders": "", "kv/catalog": "", "kv/cache": ProblemOverBroad, "kv/idle": ProblemNeverUsed, "kv/stale": "",
			"egress/https://api.stripe.com": "", "egress/https://unused.example": ProblemNeverUsed,
		}
		check(t, r, want)
		for _, line := range []string{"secrets: [OLD_KEY, STRIPE_KEY]", "kv: {cache: read, catalog: read, orders: write, stale: write}", `egress: ["https://api.stripe.com"]`} {
			if !strings.Contains(r.Tightened, line) {
				t.Errorf("Tightened = %q, want a line %q", r.Tightened, line)
			}
		}
		if r.Findings != 4 {
			t.Errorf("Findings = %d, want 4 (3 never used, 1 over-broad)", r.Findings)
		}
	})
	t.Run("with a 30 day window", func(t *testing.T) {
		r := ReviewGrants("default", "shop", 2, created, perms, uses, 30*24*time.Hour, now)
		check(t, r, map[string]string{
			"secret/OLD_KEY": ProblemUnused, "kv/stale": ProblemWriteStale, "kv/cache": ProblemOverBroad,
			"secret/UNUSED_KEY": ProblemNeverUsed, "kv/orders": "",
		})
		if strings.Contains(r.Tightened, "OLD_KEY") || !strings.Contains(r.Tightened, "stale: read") {
			t.Errorf("Tightened = %q, want OLD_KEY removed and stale narrowed to read", r.Tightened)
		}
		// The tightened block parses as a manifest's permissions.
		src := "name: shop\nabi: reactor\nartifact: ./shop.wasm\nhttp:\n  - route: \"GET /x\"\n    auth: none\n" + r.Tightened
		m, err := manifest.Parse("warden.yaml", []byte(src))
		if err != nil {
			t.Fatalf("tightened block does not parse: %v\n%s", err, src)
		}
		if m.Permissions.KV["stale"] != "read" || len(m.Permissions.Egress) != 1 {
			t.Errorf("parsed permissions = %+v", m.Permissions)
		}
	})
	t.Run("nothing granted", func(t *testing.T) {
		r := ReviewGrants("default", "shop", 1, created, manifest.Permissions{}, nil, 0, now)
		if r.Findings != 0 || r.Tightened != "permissions: {}\n" {
			t.Errorf("review of no grants = %+v", r)
		}
	})
}

func check(t *testing.T, r Review, want map[string]string) {
	t.Helper()
	got := map[string]string{}
	for _, g := range r.Grants {
		got[g.Kind+"/"+g.Target] = g.Problem
	}
	for k, w := range want {
		if g, ok := got[k]; !ok || g != w {
			t.Errorf("grant %s: problem = %q (present %v), want %q", k, g, ok, w)
		}
	}
}
