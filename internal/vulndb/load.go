package vulndb

import (
	"archive/zip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/mod/semver"
)

// Bounds on one import. Load refuses the whole import past MaxTotalSize or
// MaxEntries: a database cut short at an arbitrary point would silently
// miss advisories.
const (
	MaxTotalSize = 512 << 20 // bytes read in all: entries, index files, archive
	MaxEntries   = 200_000   // advisories kept; the Go database holds a few thousand
)

const (
	maxIndexSize = 64 << 20  // one index/*.json file; vuln.go.dev's are a few MiB
	maxFiles     = 1_000_000 // directory entries or archive members looked at
)

// Sentinel errors, for errors.Is.
var (
	// ErrTooLarge: a file is larger than its bound (MaxEntrySize for an
	// entry). The file is skipped and reported.
	ErrTooLarge = errors.New("file too large")
	// ErrLimit: the import as a whole passes MaxTotalSize, MaxEntries or
	// its bound on files; Load returns it as its error and no entries.
	ErrLimit = errors.New("import limit exceeded")
	// ErrUnsafePath: a symlink leads out of the directory given to Load,
	// or is absolute, or an archive member's name is not a plain relative
	// path ("zip slip").
	ErrUnsafePath = errors.New("path escapes the import root")
	// ErrUnsafeArchive: a .zip has an unsafe or ambiguous member name
	// (ErrUnsafePath, a duplicate, a file that is also a directory). Load
	// refuses the whole archive.
	ErrUnsafeArchive = errors.New("unsafe archive")
)

// FileError is a problem with one file of an import. Load reports it and
// goes on with the other files.
type FileError struct {
	File string // as the operator can find it: a path, or "db.zip!/ID/GO-2022-1059.json"
	Err  error
}

func (e *FileError) Error() string { return e.File + ": " + e.Err.Error() }
func (e *FileError) Unwrap() error { return e.Err }

type limits struct {
	entry, index, total int64
	entries, files      int
}

var defaultLimits = limits{
	entry:   MaxEntrySize,
	index:   maxIndexSize,
	total:   MaxTotalSize,
	entries: MaxEntries,
	files:   maxFiles,
}

// Load reads the vulnerability database at path, which is one of:
//   - a directory in the Go vulnerability database layout (it has an ID
//     directory, at its top or inside its only directory): ID/*.json are
//     read; index/db.json, index/modules.json and index/vulns.json are
//     optional and only cross-checked against the entries, each
//     disagreement being a *FileError while the entries still load; an
//     entry whose file name is not its ID is refused;
//   - any other directory: every *.json file at any depth is an OSV entry,
//     skipping directories named "index" and names starting with ".";
//   - a .zip file (by extension or content) holding either of the above;
//   - any other file: one OSV entry.
//
// It returns the entries, sorted by ID; a *FileError for each file that
// could not be used (unreadable, too large, malformed, a symlink leading
// out of path); and an error only when nothing can be trusted: path cannot
// be read, a bound on the whole import (MaxTotalSize, MaxEntries) is
// passed (ErrLimit), or an archive is unsafe (ErrUnsafeArchive). Entries
// with no Go package are skipped, and reported only when path is that one
// file. Of two entries with one ID the one modified last is kept and the
// other reported.
//
// # Notes
//   - Symlinks under a directory are followed only to files inside it (via
//     os.Root); symlinked directories are not descended into. Archive
//     symlinks are never followed.
//   - Only regular files are opened, so a FIFO in the tree cannot stall an
//     import; a file swapped for a FIFO between the check and the open
//     still can, which matters only if the tree is being written while it
//     is imported.
//   - Load never writes anything and never touches the network.
func Load(path string) ([]*Entry, []error, error) {
	return load(path, defaultLimits)
}

func load(p string, lim limits) ([]*Entry, []error, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, nil, err
	}
	l := &loader{lim: lim, byID: make(map[string]int)}
	switch {
	case fi.IsDir():
		err = l.loadDir(p)
	case fi.Mode().IsRegular():
		err = l.loadFile(p, fi)
	default:
		err = fmt.Errorf("%s: not a regular file or a directory", p)
	}
	if err != nil {
		return nil, nil, err
	}
	slices.SortFunc(l.entries, func(a, b *Entry) int { return strings.Compare(a.ID, b.ID) })
	return l.entries, l.errs, nil
}

type loader struct {
	lim     limits
	display func(name string) string // what the operator is shown for a member name
	archive bool                     // reading a .zip: symlinks are members, not links
	single  bool                     // path is one entry file

	total   int64
	files   int
	entries []*Entry
	byID    map[string]int    // ID → index in entries
	fileOf  map[*Entry]string // where each entry came from, for duplicate reports
	errs    []error
}

func (l *loader) fail(name string, err error) {
	l.errs = append(l.errs, &FileError{File: l.display(name), Err: err})
}

// loadDir reads the tree at p, confined to it by os.Root.
func (l *loader) loadDir(p string) error {
	root, err := os.OpenRoot(p)
	if err != nil {
		return err
	}
	defer root.Close()
	l.display = func(n string) string { return filepath.Join(p, filepath.FromSlash(n)) }
	return l.loadFS(root.FS())
}

// loadFile reads path, a regular file: an archive or one entry.
func (l *loader) loadFile(p string, fi fs.FileInfo) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	var magic [4]byte
	n, _ := io.ReadFull(f, magic[:])
	if strings.EqualFold(filepath.Ext(p), ".zip") || string(magic[:n]) == "PK\x03\x04" {
		return l.loadZip(p, f, fi.Size())
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	// The operator named this file, so a symlink to it is followed.
	l.single = true
	l.display = func(string) string { return p }
	b, err := l.readAll(f, fi.Size(), l.lim.entry)
	if errors.Is(err, ErrLimit) {
		return err
	}
	if err != nil {
		l.fail(p, err)
		return nil
	}
	return l.parseAndAdd(b, p, "")
}

// loadZip checks every member name of the archive before reading any.
func (l *loader) loadZip(p string, f *os.File, size int64) error {
	if size > l.lim.total {
		return fmt.Errorf("%s: %w: archive is %d bytes, more than %d", p, ErrLimit, size, l.lim.total)
	}
	zr, err := zip.NewReader(f, size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) { // names are checked below either way
		return fmt.Errorf("%s: %w", p, err)
	}
	if len(zr.File) > l.lim.files {
		return fmt.Errorf("%s: %w: more than %d members", p, ErrLimit, l.lim.files)
	}
	files := make(map[string]bool, len(zr.File))
	dirs := make(map[string]bool)
	for _, m := range zr.File {
		n, isDir := strings.CutSuffix(m.Name, "/")
		if strings.Contains(m.Name, `\`) || !fs.ValidPath(n) || n == "." {
			return fmt.Errorf("%s: %w: member %q: %w", p, ErrUnsafeArchive, clip(m.Name), ErrUnsafePath)
		}
		if files[n] || (!isDir && dirs[n]) {
			return fmt.Errorf("%s: %w: member %q appears twice", p, ErrUnsafeArchive, clip(m.Name))
		}
		if isDir {
			dirs[n] = true
		} else {
			files[n] = true
		}
	}
	for n := range files { // a file must not also be the parent of a member
		for d := path.Dir(n); d != "."; d = path.Dir(d) {
			if files[d] {
				return fmt.Errorf("%s: %w: %q is both a file and a directory", p, ErrUnsafeArchive, clip(d))
			}
			dirs[d] = true
		}
	}
	l.archive = true
	l.display = func(n string) string { return p + "!/" + n }
	return l.loadFS(zr)
}

// loadFS reads a directory tree: the Go layout if it has one, else every
// OSV file in it.
func (l *loader) loadFS(fsys fs.FS) error {
	if prefix, ok := goLayout(fsys); ok {
		sub := fsys
		if prefix != "" {
			var err error
			if sub, err = fs.Sub(fsys, prefix); err != nil {
				return err
			}
		}
		return l.loadGo(sub, prefix)
	}
	return fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			l.fail(name, err)
			return nil
		}
		if l.files++; l.files > l.lim.files {
			return fmt.Errorf("%w: more than %d files", ErrLimit, l.lim.files)
		}
		base := d.Name()
		if d.IsDir() {
			if name != "." && (base == "index" || strings.HasPrefix(base, ".")) {
				return fs.SkipDir
			}
			return nil
		}
		if strings.HasPrefix(base, ".") || !strings.EqualFold(path.Ext(base), ".json") {
			return nil
		}
		return l.entryFile(fsys, name, d, "", "")
	})
}

// goLayout reports whether fsys holds the Go database layout, at its top
// (prefix "") or in its only directory (an archive of a directory).
func goLayout(fsys fs.FS) (prefix string, ok bool) {
	if fi, err := fs.Stat(fsys, "ID"); err == nil && fi.IsDir() {
		return "", true
	}
	ents, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return "", false
	}
	var only fs.DirEntry
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if only != nil {
			return "", false
		}
		only = e
	}
	if only == nil || !only.IsDir() {
		return "", false
	}
	if fi, err := fs.Stat(fsys, only.Name()+"/ID"); err == nil && fi.IsDir() {
		return only.Name(), true
	}
	return "", false
}

// loadGo reads ID/*.json of a Go layout, then cross-checks index/.
func (l *loader) loadGo(fsys fs.FS, prefix string) error {
	name := func(n string) string { return path.Join(prefix, n) }
	ents, err := fs.ReadDir(fsys, "ID")
	if err != nil {
		l.fail(name("ID"), err)
		return nil
	}
	loaded := make(map[string]*Entry)
	failed := make(map[string]bool)
	for _, d := range ents {
		if l.files++; l.files > l.lim.files {
			return fmt.Errorf("%w: more than %d files", ErrLimit, l.lim.files)
		}
		id, isJSON := strings.CutSuffix(d.Name(), ".json")
		if d.IsDir() || !isJSON || strings.HasPrefix(id, ".") {
			continue
		}
		n := len(l.errs)
		if err := l.entryFile(fsys, "ID/"+d.Name(), d, prefix, id); err != nil {
			return err
		}
		if len(l.errs) > n {
			failed[id] = true
		} else if i, ok := l.byID[id]; ok {
			loaded[id] = l.entries[i]
		}
	}
	return l.crossCheck(fsys, prefix, loaded, failed)
}

// entryFile reads and parses one entry file, keeping the entry or
// reporting the file; the error is for a bound on the whole import.
func (l *loader) entryFile(fsys fs.FS, name string, d fs.DirEntry, prefix, wantID string) error {
	shown := path.Join(prefix, name)
	b, err := l.read(fsys, name, d, l.lim.entry)
	if errors.Is(err, ErrLimit) {
		return err
	}
	if err != nil {
		l.fail(shown, err)
		return nil
	}
	return l.parseAndAdd(b, shown, wantID)
}

// parseAndAdd parses an entry read from file and keeps it. With wantID,
// the entry must have that ID (the Go layout names files by ID).
func (l *loader) parseAndAdd(b []byte, file, wantID string) error {
	e, err := Parse(b)
	if errors.Is(err, ErrNotGo) && !l.single {
		return nil
	}
	if err != nil {
		l.fail(file, err)
		return nil
	}
	if wantID != "" && e.ID != wantID {
		l.fail(file, fmt.Errorf("entry has id %q, not the %q its file name says", e.ID, wantID))
		return nil
	}
	return l.add(e, file)
}

// read reads one regular file of at most limit bytes.
func (l *loader) read(fsys fs.FS, name string, d fs.DirEntry, limit int64) ([]byte, error) {
	switch typ := d.Type(); {
	case typ&fs.ModeSymlink != 0:
		if l.archive {
			return nil, errors.New("symlink in an archive is not followed")
		}
		if err := localLink(fsys, name); err != nil {
			return nil, err
		}
		fi, err := fs.Stat(fsys, name) // os.Root: fails if the link leads out
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrUnsafePath, err)
		}
		if !fi.Mode().IsRegular() {
			return nil, errors.New("symlink to something other than a regular file is not followed")
		}
	case !typ.IsRegular():
		return nil, errors.New("not a regular file")
	}
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	return l.readAll(f, fi.Size(), limit)
}

// readAll reads f, whose size is said to be size, if it is at most limit
// bytes and the import stays within its total.
func (l *loader) readAll(f io.Reader, size, limit int64) ([]byte, error) {
	if size > limit {
		return nil, fmt.Errorf("%w: %d bytes, more than the %d allowed", ErrTooLarge, size, limit)
	}
	if l.total+size > l.lim.total {
		return nil, fmt.Errorf("%w: more than %d bytes in all", ErrLimit, l.lim.total)
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	l.total += int64(len(b))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit { // the size said otherwise (an archive header, a growing file)
		return nil, fmt.Errorf("%w: more than the %d bytes allowed", ErrTooLarge, limit)
	}
	if l.total > l.lim.total {
		return nil, fmt.Errorf("%w: more than %d bytes in all", ErrLimit, l.lim.total)
	}
	return b, nil
}

// localLink refuses a symlink whose target is absolute or climbs out of
// the tree, with a clear error; os.Root enforces the same on the whole
// chain of links when the file is opened.
func localLink(fsys fs.FS, name string) error {
	target, err := fs.ReadLink(fsys, name)
	if err != nil {
		return err
	}
	if filepath.IsAbs(target) || path.IsAbs(target) || !filepath.IsLocal(filepath.Join(filepath.Dir(filepath.FromSlash(name)), target)) {
		return fmt.Errorf("%w: symlink to %q", ErrUnsafePath, clip(target))
	}
	return nil
}

func (l *loader) add(e *Entry, file string) error {
	if l.fileOf == nil {
		l.fileOf = make(map[*Entry]string)
	}
	if i, ok := l.byID[e.ID]; ok {
		old := l.entries[i]
		if e.Modified.After(old.Modified) {
			l.fail(l.fileOf[old], fmt.Errorf("duplicate id %s: %s is newer and is kept", e.ID, l.display(file)))
			l.entries[i] = e
			l.fileOf[e] = file
		} else {
			l.fail(file, fmt.Errorf("duplicate id %s: %s is kept", e.ID, l.display(l.fileOf[old])))
		}
		return nil
	}
	if len(l.entries) >= l.lim.entries {
		return fmt.Errorf("%w: more than %d entries", ErrLimit, l.lim.entries)
	}
	l.byID[e.ID] = len(l.entries)
	l.entries = append(l.entries, e)
	l.fileOf[e] = file
	return nil
}

// crossCheck compares index/ with the entries loaded from ID/. Every
// disagreement is reported; none stops the import, since the entries are
// what matching uses. The error is for a bound on the whole import.
func (l *loader) crossCheck(fsys fs.FS, prefix string, loaded map[string]*Entry, failed map[string]bool) error {
	if fi, err := fs.Stat(fsys, "index"); err != nil || !fi.IsDir() {
		return nil
	}
	var fatal error
	readIndex := func(name string, v any) bool {
		if fatal != nil {
			return false
		}
		fi, err := fs.Stat(fsys, name)
		if errors.Is(err, fs.ErrNotExist) {
			return false
		}
		file := path.Join(prefix, name)
		if err != nil {
			l.fail(file, err)
			return false
		}
		b, err := l.read(fsys, name, fs.FileInfoToDirEntry(fi), l.lim.index)
		if errors.Is(err, ErrLimit) {
			fatal = err
			return false
		}
		if err == nil {
			// Unknown fields are allowed: the index may grow, and it is
			// only cross-checked.
			err = json.Unmarshal(b, v)
		}
		if err != nil {
			l.fail(file, err)
			return false
		}
		return true
	}
	shown := func(n string) string { return path.Join(prefix, n) }

	var db struct {
		Modified string `json:"modified"`
	}
	if readIndex("index/db.json", &db) {
		if t, err := parseTime(db.Modified); err != nil {
			l.fail(shown("index/db.json"), fieldErr("modified", "%v", err))
		} else {
			for _, id := range sortedKeys(loaded) {
				if loaded[id].Modified.After(t) {
					l.fail(shown("index/db.json"), fmt.Errorf("modified %s is before %s's %s", db.Modified, id, loaded[id].Modified.Format("2006-01-02T15:04:05Z07:00")))
				}
			}
		}
	}

	var vulns []struct {
		ID       string   `json:"id"`
		Modified string   `json:"modified"`
		Aliases  []string `json:"aliases"`
	}
	if readIndex("index/vulns.json", &vulns) {
		listed := make(map[string]bool, len(vulns))
		for _, v := range vulns {
			listed[v.ID] = true
			e, ok := loaded[v.ID]
			switch {
			case failed[v.ID]:
			case !ok:
				l.fail(shown("index/vulns.json"), fmt.Errorf("%s is listed but ID/%s.json is missing", clip(v.ID), clip(v.ID)))
			default:
				if t, err := parseTime(v.Modified); err != nil || !t.Equal(e.Modified) {
					l.fail(shown("index/vulns.json"), fmt.Errorf("%s: modified %q, the entry says %s", v.ID, clip(v.Modified), e.Modified.Format("2006-01-02T15:04:05Z07:00")))
				}
				if !sameSet(v.Aliases, e.Aliases) {
					l.fail(shown("index/vulns.json"), fmt.Errorf("%s: aliases %q, the entry says %q", v.ID, v.Aliases, e.Aliases))
				}
			}
		}
		for _, id := range sortedKeys(loaded) {
			if !listed[id] {
				l.fail(shown("ID/"+id+".json"), errors.New("not listed in index/vulns.json"))
			}
		}
	}

	var modules []struct {
		Path  string `json:"path"`
		Vulns []struct {
			ID       string `json:"id"`
			Modified string `json:"modified"`
			Fixed    string `json:"fixed"`
		} `json:"vulns"`
	}
	if readIndex("index/modules.json", &modules) {
		listed := make(map[[2]string]bool)
		for _, m := range modules {
			for _, v := range m.Vulns {
				listed[[2]string{m.Path, v.ID}] = true
				e, ok := loaded[v.ID]
				if failed[v.ID] {
					continue
				}
				if !ok {
					l.fail(shown("index/modules.json"), fmt.Errorf("%s lists %s but ID/%s.json is missing", clip(m.Path), clip(v.ID), clip(v.ID)))
					continue
				}
				if !affectsModule(e, m.Path) {
					l.fail(shown("index/modules.json"), fmt.Errorf("%s lists %s, which does not affect it", clip(m.Path), v.ID))
					continue
				}
				if v.Fixed != "" {
					if want := strings.TrimPrefix(latestFixed(e, m.Path), "v"); v.Fixed != want {
						l.fail(shown("index/modules.json"), fmt.Errorf("%s %s: fixed %q, the entry says %q", clip(m.Path), v.ID, clip(v.Fixed), want))
					}
				}
			}
		}
		for _, id := range sortedKeys(loaded) {
			for _, a := range loaded[id].Affected {
				if !listed[[2]string{a.Module, id}] {
					l.fail(shown("ID/"+id+".json"), fmt.Errorf("module %s is not listed in index/modules.json", a.Module))
					listed[[2]string{a.Module, id}] = true // once per module
				}
			}
		}
	}
	return fatal
}

func affectsModule(e *Entry, module string) bool {
	for _, a := range e.Affected {
		if a.Module == module {
			return true
		}
	}
	return false
}

// latestFixed is the version with the latest fix of e for module, "" if
// the advisory was reintroduced after it; what index/modules.json records
// (golang.org/x/vuln internal/semver.LatestFixedVersion).
func latestFixed(e *Entry, module string) string {
	var latest string
	for _, a := range e.Affected {
		if a.Module != module {
			continue
		}
		for _, r := range a.Ranges {
			if r.Fixed != "" && (latest == "" || semver.Compare(r.Fixed, latest) > 0) {
				latest = r.Fixed
			}
		}
	}
	for _, a := range e.Affected {
		if a.Module != module {
			continue
		}
		for _, r := range a.Ranges {
			if r.Introduced != "" && latest != "" && semver.Compare(latest, r.Introduced) < 0 {
				return ""
			}
		}
	}
	return latest
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
