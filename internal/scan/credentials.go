package scan

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/zricethezav/gitleaks/v8/config"
	"github.com/zricethezav/gitleaks/v8/detect"
	"github.com/zricethezav/gitleaks/v8/logging"
	glregexp "github.com/zricethezav/gitleaks/v8/regexp"
)

// Credential detection runs gitleaks' default rules (about 220, each
// prefiltered by keywords) over the module's data segments and custom
// sections (but "name", which holds only function names), and over the
// manifest.
//
// A Go module's data is about a megabyte, mostly binary, in tens of
// thousands of segments; gitleaks' rules match text. So the rules run over
// the printable runs of at least minRun bytes, joined by newlines, with a
// map from each run back to its region and offset. The text is handed to
// gitleaks in fragments of about fragmentSize bytes (whole runs): the
// keyword prefilter works per fragment, so a rule whose keyword ("key",
// "token") is everywhere in a Go binary runs its regexp over the few
// fragments holding the keyword instead of over the whole text (measured
// on examples/echo-json: one text 250 ms, 512-byte fragments 35 ms). A run
// longer than maxFragment is cut into windows that overlap by
// windowOverlap, so that the work per fragment stays bounded and a token up
// to windowOverlap long is whole in at least one window.
//
// Go packs string constants end to end, with no separator, so a token
// such as an AWS key id sits between other strings: "maxheadersAKIA…". The
// default rules anchor token formats with \b, or require a quote, space or
// end of line after them, and so miss it. For the module (not the
// manifest), a second rule set, packedRules, runs some of those rules
// without the anchors; its findings carry the same rule ids.
//
// Input built to make every rule run everywhere costs far more than a real
// module; credentialBudget bounds it, and a scan that runs out of time is a
// critical finding (fail closed), not a silent pass.

const (
	// minRun is the shortest run of printable bytes scanned; no token
	// format gitleaks knows is shorter.
	minRun = 16
	// fragmentSize is the size of the text handed to gitleaks at once.
	fragmentSize = 512
	// maxFragment and windowOverlap cut long runs (a private key in PEM
	// form is at most about 3.3 KiB).
	maxFragment   = 16 << 10
	windowOverlap = 4 << 10
	// maxPerRule is how many findings of one credential rule a report
	// lists; the rest are counted in one more finding.
	maxPerRule = 20
)

// credentialBudget is the time one Scan may spend in gitleaks, not
// counting the wait for another Scan to finish with it. A variable for
// tests.
var credentialBudget = 10 * time.Second

// gitleaks keeps global state (its logger, viper's configuration) and a
// Detector is not documented as safe for concurrent use: the two are built
// once, and every use holds detectMu.
var (
	detectorOnce sync.Once
	detectors    struct{ strict, packed *detect.Detector }
	detectorErr  error
	detectMu     sync.Mutex
)

func loadDetectors() error {
	detectorOnce.Do(func() {
		defer func() {
			if r := recover(); r != nil {
				detectorErr = fmt.Errorf("load gitleaks rules: panic")
			}
		}()
		// gitleaks logs what it skips, secrets included at trace level;
		// nothing of it may reach warden's output.
		logging.Logger = zerolog.Nop()
		d, err := detect.NewDetectorDefaultConfig()
		if err != nil {
			detectorErr = fmt.Errorf("load gitleaks rules: %w", err)
			return
		}
		detectors.strict = configure(d)
		detectors.packed = configure(detect.NewDetector(packedRules(d.Config)))
	})
	return detectorErr
}

func configure(d *detect.Detector) *detect.Detector {
	d.Redact = 100               // findings never carry the secret, even inside this package
	d.IgnoreGitleaksAllow = true // a module must not be able to allowlist its own secrets
	d.MaxDecodeDepth = 0         // no decoding: offsets must map back to the bytes
	d.MaxTargetMegaBytes = 0
	return d
}

// packedRules derives from c the rules for a token format anchored at its
// start by \b, with the anchors and the trailing terminator removed, so
// that they match a token packed between other strings. Only formats that
// stay distinctive without the anchors are kept: a literal prefix holding
// punctuation ("sk-ant-api03-", "glpat-", "hf_"), or one of packedAlways.
// Others, such as "EAAA" followed by 22 word characters, would match
// inside every base64 blob.
func packedRules(c config.Config) config.Config {
	out := config.Config{Rules: make(map[string]config.Rule), Keywords: make(map[string]struct{}), Allowlists: c.Allowlists}
	for id, r := range c.Rules {
		if r.Regex == nil || len(r.Keywords) == 0 || len(r.RequiredRules) > 0 || r.Path != nil {
			continue
		}
		src := r.Regex.String()
		if !strings.HasPrefix(src, `\b`) {
			continue
		}
		src = strings.TrimPrefix(src, `\b`)
		src = strings.TrimSuffix(src, `(?:[\x60'"\s;]|\\[nr]|$)`)
		src = strings.TrimSuffix(src, `\b`)
		std, err := regexp.Compile(src)
		if err != nil {
			continue
		}
		if prefix, _ := std.LiteralPrefix(); !packedAlways[id] && !strings.ContainsAny(prefix, "-_.~") {
			continue
		}
		re := compile(src)
		if re == nil {
			continue
		}
		r.Regex = re
		out.Rules[id] = r
		out.OrderedRules = append(out.OrderedRules, id)
		for _, k := range r.Keywords {
			out.Keywords[k] = struct{}{}
		}
	}
	slices.Sort(out.OrderedRules)
	return out
}

// packedAlways are the formats without a punctuated prefix that are still
// distinctive: "AKIA" and 16 characters of [A-Z2-7] (no lower case, unlike
// base64), "AIza" and 35 more.
var packedAlways = map[string]bool{"aws-access-token": true, "gcp-api-key": true}

// compile compiles with gitleaks' regexp engine (whichever the build tags
// select), or returns nil.
func compile(src string) (re *glregexp.Regexp) {
	defer func() {
		if recover() != nil {
			re = nil
		}
	}()
	return glregexp.MustCompile(src)
}

// credentialSeverity is critical for private keys and the big clouds'
// credentials, high for every other rule.
func credentialSeverity(rule string) Severity {
	if strings.Contains(rule, "private-key") {
		return Critical
	}
	for _, p := range []string{"aws-", "gcp-", "azure-"} {
		if strings.HasPrefix(rule, p) {
			return Critical
		}
	}
	return High
}

// Regions of a textMap.
const (
	regionData = iota
	regionCustom
	regionManifest
)

// textMap is the scanned text of several regions joined into one, with a
// map back to where each run of it came from.
type textMap struct {
	buf  []byte
	runs []textRun
}

type textRun struct {
	start, n int // where in buf, how long
	region   int
	seg      int    // regionData: the segment's index
	name     string // regionCustom: the section's name
	off      int    // offset of the run in its region
	packed   bool   // run the packed rules too
}

func printable(c byte) bool { return c >= 0x20 && c < 0x7f || c == '\t' || c == '\n' || c == '\r' }

// addRuns appends the printable runs of b, at least minRun long.
func (t *textMap) addRuns(proto textRun, b []byte) {
	for i := 0; i < len(b); {
		if !printable(b[i]) {
			i++
			continue
		}
		j := i
		for j < len(b) && printable(b[j]) {
			j++
		}
		if j-i >= minRun {
			t.addRun(proto, i, b[i:j])
		}
		i = j
	}
}

func (t *textMap) addRun(proto textRun, off int, b []byte) {
	proto.start, proto.n, proto.off = len(t.buf), len(b), off
	t.runs = append(t.runs, proto)
	t.buf = append(t.buf, b...)
	t.buf = append(t.buf, '\n')
}

// fragment is a piece of buf handed to gitleaks at once.
type fragment struct {
	start, end int
	packed     bool
}

// fragments cuts buf into fragments of whole runs, at least fragmentSize
// bytes but the last, and cuts a run over maxFragment into overlapping
// windows. Runs of a region with packed rules and runs without are never
// in one fragment.
func (t *textMap) fragments() []fragment {
	var out []fragment
	cur := fragment{start: -1}
	flush := func(end int) {
		if cur.start >= 0 {
			cur.end = end
			out = append(out, cur)
			cur.start = -1
		}
	}
	for _, r := range t.runs {
		end := r.start + r.n + 1 // with its newline
		if r.n > maxFragment || cur.start >= 0 && cur.packed != r.packed {
			flush(r.start)
		}
		if r.n > maxFragment {
			for s := r.start; ; s += maxFragment - windowOverlap {
				e := min(s+maxFragment, end)
				out = append(out, fragment{start: s, end: e, packed: r.packed})
				if e == end {
					break
				}
			}
			continue
		}
		if cur.start < 0 {
			cur = fragment{start: r.start, packed: r.packed}
		}
		if end-cur.start >= fragmentSize {
			flush(end)
		}
	}
	flush(len(t.buf))
	return out
}

// lineColOffset converts gitleaks' line (0-based here) and column (1-based,
// in bytes, counted from the newline that ends the previous line; see
// gitleaks' detect/location.go) to an offset in text.
func lineColOffset(text string, line, col int) int {
	base := 0 // line 0 starts at 0; line k at the k-th newline
	for k := 0; k < line; k++ {
		from := base
		if k > 0 {
			from++
		}
		j := strings.IndexByte(text[from:], '\n')
		if j < 0 {
			break
		}
		base = from + j
	}
	return base + col - 1
}

// run returns the run holding offset off of buf (or the next one, for an
// offset on a separator), and off's offset in that run's region.
func (t *textMap) run(off int) (textRun, int, bool) {
	i := sort.Search(len(t.runs), func(i int) bool { return t.runs[i].start+t.runs[i].n > off })
	if i == len(t.runs) {
		return textRun{}, 0, false
	}
	r := t.runs[i]
	return r, r.off + max(0, off-r.start), true
}

// detectText runs the rules over each fragment of t and returns the
// findings with their offsets in buf, stopping (complete false) when the
// budget runs out. A panic in gitleaks (which reads untrusted bytes here)
// is an error, not a crash.
func detectText(t *textMap) (found []located, complete bool, err error) {
	if err := loadDetectors(); err != nil {
		return nil, false, err
	}
	detectMu.Lock()
	defer detectMu.Unlock()
	defer func() {
		if r := recover(); r != nil {
			found, complete, err = nil, false, fmt.Errorf("gitleaks panicked")
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), credentialBudget)
	defer cancel()
	text := string(t.buf)
	for _, fr := range t.fragments() {
		if ctx.Err() != nil {
			return found, false, nil
		}
		raw := text[fr.start:fr.end]
		fs := detectors.strict.DetectContext(ctx, detect.Fragment{Raw: raw})
		if fr.packed {
			fs = append(fs, detectors.packed.DetectContext(ctx, detect.Fragment{Raw: raw})...)
		}
		for _, f := range fs {
			found = append(found, located{rule: f.RuleID, desc: f.Description, off: fr.start + lineColOffset(raw, f.StartLine, f.StartColumn)})
		}
	}
	return found, ctx.Err() == nil, nil
}

// located is what this package keeps of a gitleaks finding: never its
// Secret, Match or Line.
type located struct {
	rule, desc string
	off        int // in textMap.buf
}

func (s *scanner) findCredentials() {
	mod, modComplete, err := moduleHits(s.m, s.in.Wasm)
	if err != nil {
		s.add(KindCredential, "credential.scan-failed", Critical, "",
			"the credential scanner failed, so the module and manifest were not checked for embedded credentials")
		return
	}
	hits, complete := mod, modComplete
	if len(s.in.ManifestRaw) > 0 {
		// The manifest is text: all of it, not only printable runs.
		t := &textMap{}
		t.addRun(textRun{region: regionManifest}, 0, s.in.ManifestRaw)
		man, manComplete, err := resolve(t)
		if err != nil {
			s.add(KindCredential, "credential.scan-failed", Critical, "",
				"the credential scanner failed, so the module and manifest were not checked for embedded credentials")
			return
		}
		hits, complete = append(slices.Clip(hits), man...), complete && manComplete
	}
	if !complete {
		s.add(KindCredential, "credential.scan-incomplete", Critical, "",
			fmt.Sprintf("the credential scan ran out of time (%v) before it checked all of the module and manifest: what it did not reach may hold credentials", credentialBudget))
	}
	seen := make(map[[2]string]bool)
	count := make(map[string]int)
	for _, h := range hits {
		var loc, msg string
		desc := strings.TrimSuffix(strings.TrimSpace(h.desc), ".")
		switch h.region {
		case regionManifest:
			loc = fmt.Sprintf("%s:%d", s.in.ManifestName, 1+bytes.Count(s.in.ManifestRaw[:min(h.off, len(s.in.ManifestRaw))], []byte("\n")))
			msg = fmt.Sprintf("manifest holds what looks like a credential (%s); store it as a secret (warden secrets set) and grant it in permissions.secrets", desc)
		case regionCustom:
			loc = fmt.Sprintf("custom section %s +%#x", quoted(h.name), h.off)
		default:
			loc = fmt.Sprintf("data segment %d +%#x", h.seg, h.off)
		}
		if msg == "" {
			msg = fmt.Sprintf("module embeds what looks like a credential (%s); remove it and read it at run time with warden.secret_get (permissions.secrets)", desc)
		}
		if key := [2]string{h.rule, loc}; !seen[key] { // overlapping windows, both rule sets
			seen[key] = true
			if count[h.rule]++; count[h.rule] <= maxPerRule {
				s.add(KindCredential, h.rule, credentialSeverity(h.rule), loc, msg)
			}
		}
	}
	for rule, n := range count {
		if n > maxPerRule {
			s.add(KindCredential, rule, credentialSeverity(rule), "",
				fmt.Sprintf("%d more matches of this rule are not listed", n-maxPerRule))
		}
	}
}

// hit is one credential match, placed in its region.
type hit struct {
	rule, desc string
	region     int
	seg        int    // regionData
	name       string // regionCustom
	off        int    // in the region
}

// resolve runs the rules over t and places each match.
func resolve(t *textMap) ([]hit, bool, error) {
	if len(t.runs) == 0 {
		return nil, true, nil
	}
	found, complete, err := detectText(t)
	if err != nil {
		return nil, false, err
	}
	out := make([]hit, 0, len(found))
	for _, f := range found {
		r, off, ok := t.run(f.off)
		if !ok {
			continue
		}
		out = append(out, hit{rule: f.rule, desc: f.desc, region: r.region, seg: r.seg, name: r.name, off: off})
	}
	return out, complete, nil
}

// The module part of the credential scan is the costly one (hundreds of
// milliseconds for a Go module under the race detector) and depends on
// the module's bytes alone: the last complete results are kept by the
// module's digest, so the same module deployed with another manifest is
// not scanned again. Results are never modified once stored.
var moduleCache = struct {
	sync.Mutex
	byDigest map[[32]byte][]hit
	order    [][32]byte
}{byDigest: map[[32]byte][]hit{}}

const moduleCacheSize = 32

func moduleHits(m *wasmModule, wasm []byte) ([]hit, bool, error) {
	d := sha256.Sum256(wasm)
	moduleCache.Lock()
	h, ok := moduleCache.byDigest[d]
	moduleCache.Unlock()
	if ok {
		return h, true, nil
	}
	t := &textMap{}
	for _, seg := range m.data {
		t.addRuns(textRun{region: regionData, seg: seg.index, packed: true}, seg.bytes)
	}
	for _, c := range m.custom {
		if c.name != "name" {
			t.addRuns(textRun{region: regionCustom, name: c.name, packed: true}, c.payload)
		}
	}
	h, complete, err := resolve(t)
	if err != nil || !complete { // a failure or a timeout is tried again next time
		return h, complete, err
	}
	moduleCache.Lock()
	defer moduleCache.Unlock()
	if _, ok := moduleCache.byDigest[d]; !ok {
		if len(moduleCache.order) >= moduleCacheSize {
			delete(moduleCache.byDigest, moduleCache.order[0])
			moduleCache.order = moduleCache.order[1:]
		}
		moduleCache.byDigest[d] = h
		moduleCache.order = append(moduleCache.order, d)
	}
	return h, true, nil
}
