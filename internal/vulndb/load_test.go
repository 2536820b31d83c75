package vulndb

import (
	"archive/zip"
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// The advisories in testdata/vulndb, by ID.
var testDBIDs = []string{"GO-2022-0189", "GO-2022-0969", "GO-2022-1059", "GO-2023-1571", "GO-2023-2102", "GO-2024-2687", "GO-2025-3829"}

func ids(entries []*Entry) []string {
	var out []string
	for _, e := range entries {
		out = append(out, e.ID)
	}
	return out
}

// copyDir copies the tree at src to a new temporary directory.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

type member struct {
	name, body string
	mode       fs.FileMode
}

// writeZip writes an archive of members to a temporary file.
func writeZip(t *testing.T, members []member) string {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, m := range members {
		h := &zip.FileHeader{Name: m.name, Method: zip.Deflate}
		if m.mode != 0 {
			h.SetMode(m.mode)
		}
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(m.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "db.zip")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// zipOf lists the files under dir as archive members under prefix.
func zipOf(t *testing.T, dir, prefix string) []member {
	t.Helper()
	var ms []member
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		ms = append(ms, member{name: prefix + filepath.ToSlash(rel), body: string(b)})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

func mustLoad(t *testing.T, p string) ([]*Entry, []error) {
	t.Helper()
	entries, errs, err := Load(p)
	if err != nil {
		t.Fatalf("Load(%s) = %v", p, err)
	}
	return entries, errs
}

func TestLoadGoLayout(t *testing.T) {
	db := filepath.Join("testdata", "vulndb")
	tests := []struct {
		name string
		path func(t *testing.T) string
	}{
		{"directory", func(*testing.T) string { return db }},
		{"zip", func(t *testing.T) string { return writeZip(t, zipOf(t, db, "")) }},
		{"zip of the directory", func(t *testing.T) string { return writeZip(t, zipOf(t, db, "vulndb/")) }},
		{"zip without .zip", func(t *testing.T) string {
			p := writeZip(t, zipOf(t, db, ""))
			q := strings.TrimSuffix(p, ".zip") + ".db"
			if err := os.Rename(p, q); err != nil {
				t.Fatal(err)
			}
			return q
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entries, errs := mustLoad(t, tt.path(t))
			if len(errs) != 0 {
				t.Errorf("Load errors = %v, want none", errs)
			}
			if got := ids(entries); !slices.Equal(got, testDBIDs) {
				t.Errorf("Load IDs = %v, want %v", got, testDBIDs)
			}
		})
	}
}

func TestLoadFile(t *testing.T) {
	entries, errs := mustLoad(t, filepath.Join("testdata", "vulndb", "ID", "GO-2022-1059.json"))
	if len(errs) != 0 || len(entries) != 1 || entries[0].ID != "GO-2022-1059" {
		t.Errorf("Load(GO-2022-1059.json) = %v, %v; want that one entry", ids(entries), errs)
	}

	// The operator named a non-Go file: say so.
	p := filepath.Join("testdata", "osv", "GHSA-rhm9-p9w5-fwm7.json")
	entries, errs = mustLoad(t, p)
	if len(entries) != 0 || len(errs) != 1 || !errors.Is(errs[0], ErrNotGo) || !strings.Contains(errs[0].Error(), p) {
		t.Errorf("Load(%s) = %v, %v; want no entry and one ErrNotGo naming the file", p, ids(entries), errs)
	}
}

func TestLoadPlainOSV(t *testing.T) {
	// A tree of OSV files at any depth; the PyPI advisory is skipped
	// without an error, dot-directories and index/ are not read.
	dir := t.TempDir()
	for _, f := range []struct{ from, to string }{
		{"testdata/osv/GHSA-c5pj-mqfh-rvc3.json", "github-reviewed/2024/04/GHSA-c5pj-mqfh-rvc3/GHSA-c5pj-mqfh-rvc3.json"},
		{"testdata/osv/GHSA-rhm9-p9w5-fwm7.json", "github-reviewed/2021/02/GHSA-rhm9-p9w5-fwm7/GHSA-rhm9-p9w5-fwm7.json"},
		{"testdata/vulndb/ID/GO-2022-1059.json", "go/GO-2022-1059.json"},
		{"testdata/vulndb/index/vulns.json", "index/vulns.json"},
		{"testdata/vulndb/index/vulns.json", ".git/objects.json"},
	} {
		b, err := os.ReadFile(f.from)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.FromSlash(f.to))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "README.md"), []byte("not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	entries, errs := mustLoad(t, dir)
	if len(errs) != 0 {
		t.Errorf("Load errors = %v, want none", errs)
	}
	if got, want := ids(entries), []string{"GHSA-c5pj-mqfh-rvc3", "GO-2022-1059"}; !slices.Equal(got, want) {
		t.Errorf("Load IDs = %v, want %v", got, want)
	}
}

func TestLoadCorruptFile(t *testing.T) {
	for _, layout := range []string{"go", "plain"} {
		t.Run(layout, func(t *testing.T) {
			dir := copyDir(t, filepath.Join("testdata", "vulndb"))
			if layout == "plain" {
				if err := os.RemoveAll(filepath.Join(dir, "index")); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(filepath.Join(dir, "ID"), filepath.Join(dir, "advisories")); err != nil {
					t.Fatal(err)
				}
			}
			sub := "ID"
			if layout == "plain" {
				sub = "advisories"
			}
			bad := filepath.Join(dir, sub, "GO-2023-1571.json")
			if err := os.WriteFile(bad, []byte(`{"id":"GO-2023-1571","modified":"2023-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"Go","name":"golang.org/x/net"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"zero.seven"}]}]}]}`), 0o644); err != nil {
				t.Fatal(err)
			}
			entries, errs := mustLoad(t, dir)
			want := slices.DeleteFunc(slices.Clone(testDBIDs), func(id string) bool { return id == "GO-2023-1571" })
			if got := ids(entries); !slices.Equal(got, want) {
				t.Errorf("Load IDs = %v, want the other %v", got, want)
			}
			if len(errs) != 1 {
				t.Fatalf("Load errors = %v, want exactly one", errs)
			}
			var fe *FileError
			if !errors.As(errs[0], &fe) || fe.File != bad || !strings.Contains(fe.Err.Error(), "affected[0].ranges[0].events[1].fixed") {
				t.Errorf("Load error = %v, want a *FileError for %s naming the field", errs[0], bad)
			}
		})
	}
}

func TestLoadOversizedEntry(t *testing.T) {
	dir := copyDir(t, filepath.Join("testdata", "vulndb", "ID"))
	big := filepath.Join(dir, "GO-2099-9999.json")
	pad := `{"id":"GO-2099-9999","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"Go","name":"m"}}]}`
	if err := os.WriteFile(big, []byte(pad+strings.Repeat(" ", MaxEntrySize+1-len(pad))), 0o644); err != nil {
		t.Fatal(err)
	}
	entries, errs := mustLoad(t, dir)
	if len(entries) != len(testDBIDs) {
		t.Errorf("Load kept %v, want the %d others", ids(entries), len(testDBIDs))
	}
	if len(errs) != 1 || !errors.Is(errs[0], ErrTooLarge) || !strings.Contains(errs[0].Error(), big) {
		t.Errorf("Load errors = %v, want one ErrTooLarge naming %s", errs, big)
	}
}

func TestLoadLimits(t *testing.T) {
	db := filepath.Join("testdata", "vulndb")
	tests := []struct {
		name string
		lim  limits
	}{
		{"total bytes", limits{entry: MaxEntrySize, index: maxIndexSize, total: 20_000, entries: MaxEntries, files: maxFiles}},
		{"entries", limits{entry: MaxEntrySize, index: maxIndexSize, total: MaxTotalSize, entries: 3, files: maxFiles}},
		{"files", limits{entry: MaxEntrySize, index: maxIndexSize, total: MaxTotalSize, entries: MaxEntries, files: 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entries, errs, err := load(db, tt.lim)
			if !errors.Is(err, ErrLimit) || entries != nil || errs != nil {
				t.Errorf("load(%s, %+v) = %d entries, %v, %v; want only ErrLimit", db, tt.lim, len(entries), errs, err)
			}
		})
	}
	// A zip bomb is bounded by what is read, not by what headers say.
	body := `{"id":"GO-2099-0001","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"Go","name":"m"}}]}` + strings.Repeat(" ", 50_000)
	p := writeZip(t, []member{{name: "a.json", body: body}, {name: "b.json", body: body}})
	lim := defaultLimits
	lim.total = 80_000
	if _, _, err := load(p, lim); !errors.Is(err, ErrLimit) {
		t.Errorf("load(zip of 100 kB unpacked, total 80 kB) = %v, want ErrLimit", err)
	}
}

func TestLoadUnsafeArchive(t *testing.T) {
	ok := `{"id":"GO-2099-0001","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"Go","name":"m"}}]}`
	tests := []struct {
		name    string
		members []member
	}{
		{"zip slip", []member{{name: "ID/GO-2099-0001.json", body: ok}, {name: "../../evil.json", body: ok}}},
		{"absolute", []member{{name: "/etc/evil.json", body: ok}}},
		{"backslash", []member{{name: `..\evil.json`, body: ok}}},
		{"dot element", []member{{name: "a/./b.json", body: ok}}},
		{"duplicate", []member{{name: "a.json", body: ok}, {name: "a.json", body: ok}}},
		{"file and directory", []member{{name: "a", body: ok}, {name: "a/b.json", body: ok}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeZip(t, tt.members)
			entries, errs, err := Load(p)
			if !errors.Is(err, ErrUnsafeArchive) || entries != nil || errs != nil {
				t.Errorf("Load(%s) = %v, %v, %v; want only ErrUnsafeArchive", tt.name, ids(entries), errs, err)
			}
		})
	}
	if _, _, err := Load(writeZip(t, []member{{name: "../x.json", body: ok}})); !errors.Is(err, ErrUnsafePath) {
		t.Errorf("Load(zip slip) = %v, want it to wrap ErrUnsafePath too", err)
	}
}

func TestLoadZipSymlinkNotFollowed(t *testing.T) {
	ok := `{"id":"GO-2099-0001","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"Go","name":"m"}}]}`
	p := writeZip(t, []member{{name: "a.json", body: ok}, {name: "link.json", body: "/etc/passwd", mode: fs.ModeSymlink | 0o777}})
	entries, errs := mustLoad(t, p)
	if len(entries) != 1 || len(errs) != 1 || !strings.Contains(errs[0].Error(), "link.json") {
		t.Errorf("Load = %v, %v; want a.json and an error for link.json", ids(entries), errs)
	}
}

func TestLoadSymlinks(t *testing.T) {
	outside := t.TempDir()
	secret := filepath.Join(outside, "GO-2099-0002.json")
	if err := os.WriteFile(secret, []byte(`{"id":"GO-2099-0002","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"Go","name":"m"}}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	b, err := os.ReadFile(filepath.Join("testdata", "vulndb", "ID", "GO-2022-1059.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "real.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	links := map[string]string{
		"absolute.json": secret,
		"relative.json": filepath.Join("..", filepath.Base(outside), "GO-2099-0002.json"),
		"inside.json":   "real.json",
		"outdir":        outside, // a symlinked directory is not descended into
		// A link that looks local but leads to one that is not: only
		// os.Root's resolution of the whole chain catches it.
		"hop":        filepath.Join("..", filepath.Base(outside), "GO-2099-0002.json"),
		"chain.json": "hop",
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			if runtime.GOOS == "windows" {
				t.Skipf("cannot create symlinks here: %v", err)
			}
			t.Fatal(err)
		}
	}
	entries, errs := mustLoad(t, dir)
	if got := ids(entries); !slices.Equal(got, []string{"GO-2022-1059"}) {
		t.Errorf("Load IDs = %v, want only GO-2022-1059 (real.json, inside.json being a duplicate)", got)
	}
	var unsafe []string
	for _, err := range errs {
		if errors.Is(err, ErrUnsafePath) {
			unsafe = append(unsafe, filepath.Base(err.(*FileError).File))
		}
	}
	slices.Sort(unsafe)
	if !slices.Equal(unsafe, []string{"absolute.json", "chain.json", "relative.json"}) {
		t.Errorf("ErrUnsafePath for %v (all errors %v), want absolute.json, chain.json and relative.json", unsafe, errs)
	}
}

func TestLoadFIFO(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no FIFOs on Windows")
	}
	dir := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(dir, "pipe.json"), 0o644); err != nil {
		t.Fatalf("mkfifo: %v", err)
	}
	// Were the FIFO opened, Load would block here forever.
	entries, errs := mustLoad(t, dir)
	if len(entries) != 0 || len(errs) != 1 || !strings.Contains(errs[0].Error(), "not a regular file") {
		t.Errorf("Load(dir with a FIFO) = %v, %v; want one \"not a regular file\" error", ids(entries), errs)
	}
}

func TestLoadDuplicateIDs(t *testing.T) {
	dir := t.TempDir()
	older := `{"id":"GO-2099-0001","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"Go","name":"m"}}]}`
	newer := `{"id":"GO-2099-0001","modified":"2024-06-01T00:00:00Z","affected":[{"package":{"ecosystem":"Go","name":"m"}}]}`
	for name, body := range map[string]string{"a.json": newer, "b.json": older} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	entries, errs := mustLoad(t, dir)
	if len(entries) != 1 || entries[0].Modified.Month() != 6 {
		t.Errorf("Load = %v, want the newer GO-2099-0001 only", entries)
	}
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), filepath.Join(dir, "b.json")) || !strings.Contains(errs[0].Error(), "duplicate") {
		t.Errorf("Load errors = %v, want one duplicate error naming b.json", errs)
	}
}

func TestLoadCrossCheck(t *testing.T) {
	tests := []struct {
		name   string
		change func(t *testing.T, dir string)
		want   []string // substrings, one error each
	}{
		{"file named for another id", func(t *testing.T, dir string) {
			mv(t, filepath.Join(dir, "ID", "GO-2022-1059.json"), filepath.Join(dir, "ID", "GO-2022-1058.json"))
		}, []string{"GO-2022-1058.json: entry has id \"GO-2022-1059\"", "GO-2022-1059 is listed but ID/GO-2022-1059.json is missing", "golang.org/x/text lists GO-2022-1059 but ID/GO-2022-1059.json is missing"}},
		{"entry not in the index", func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, "index", "vulns.json"), strings.Replace(read(t, filepath.Join(dir, "index", "vulns.json")), `{"id":"GO-2022-1059","modified":"0001-01-01T00:00:00Z","aliases":["CVE-2022-32149","GHSA-69ch-w2m2-3vjp"]},`, "", 1))
		}, []string{"GO-2022-1059.json: not listed in index/vulns.json"}},
		{"fixed disagrees", func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, "index", "modules.json"), strings.Replace(read(t, filepath.Join(dir, "index", "modules.json")), `"fixed":"0.3.8"`, `"fixed":"0.3.7"`, 1))
		}, []string{`golang.org/x/text GO-2022-1059: fixed "0.3.7", the entry says "0.3.8"`}},
		{"module missing", func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, "index", "modules.json"), strings.Replace(read(t, filepath.Join(dir, "index", "modules.json")), `{"path":"golang.org/x/text","vulns":[{"id":"GO-2022-1059","modified":"0001-01-01T00:00:00Z","fixed":"0.3.8"}]},`, "", 1))
		}, []string{"module golang.org/x/text is not listed in index/modules.json"}},
		{"db older than an entry", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "ID", "GO-2022-1059.json")
			write(t, p, strings.Replace(read(t, p), `"modified": "0001-01-01T00:00:00Z"`, `"modified": "2024-01-01T00:00:00Z"`, 1))
		}, []string{"index/db.json: modified 0001-01-01T00:00:00Z is before GO-2022-1059", "GO-2022-1059: modified \"0001-01-01T00:00:00Z\", the entry says 2024-01-01"}},
		{"index not JSON", func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, "index", "vulns.json"), "{")
		}, []string{"index/vulns.json: unexpected end of JSON input"}},
		{"index optional", func(t *testing.T, dir string) {
			if err := os.RemoveAll(filepath.Join(dir, "index")); err != nil {
				t.Fatal(err)
			}
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := copyDir(t, filepath.Join("testdata", "vulndb"))
			tt.change(t, dir)
			entries, errs := mustLoad(t, dir)
			if len(entries) < len(testDBIDs)-1 {
				t.Errorf("Load kept %v, want the entries kept despite the index", ids(entries))
			}
			if len(errs) != len(tt.want) {
				t.Fatalf("Load errors = %v, want %d: %q", errs, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.Contains(errs[i].Error(), w) {
					t.Errorf("Load error[%d] = %q, want it to contain %q", i, errs[i], w)
				}
			}
		})
	}
}

func TestLoadMissing(t *testing.T) {
	if _, _, err := Load(filepath.Join(t.TempDir(), "nope")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want fs.ErrNotExist", err)
	}
}

func mv(t *testing.T, from, to string) {
	t.Helper()
	if err := os.Rename(from, to); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func write(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}
