// Package manifests reads Kubernetes manifests (YAML or JSON files, whole
// directories of them, or standard input) into the inventory. It owns
// everything between the bytes on disk and inventory.Builder.Add: walking
// directories, splitting multi-document YAML and concatenated JSON, expanding
// List objects, decoding the kinds the analysis reads as typed API objects,
// and turning every input it cannot use into a source.Problem (could not
// read it) or a Coverage note (read it, chose not to use it).
//
// Decoding follows what the API server would store, not what kubectl would
// print: field names are matched case-sensitively, unknown fields are ignored
// (as with kubectl --validate=false), and objects the API server would reject
// outright (a binding without a roleRef name, a ClusterRoleBinding to a Role,
// an apiVersion that is no longer served) are reported and left out rather
// than guessed at. Two defaults are applied as kubectl apply would: a
// namespaced object without metadata.namespace goes to Options.DefaultNamespace
// ("default" unless set), and metadata.namespace on a cluster-scoped object is
// dropped.
//
// Positions: a document is numbered among the non-empty documents of its
// file, from 1, and its line is that of its first line of content (after
// the "---" and any comments). A List item has the document's number and
// the line where the item starts when it can be found by indentation (block
// YAML, any JSON), else the List's line.
//
// Secret values never leave this package. Decoder error messages can quote
// the input, so no decoder's message is passed on as is: every message is
// rebuilt from the error's position and a fixed description of its kind.
package manifests

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/keyhole-sec/keyhole/internal/inventory"
	"github.com/keyhole-sec/keyhole/internal/source"
)

// SourceName is the Source of every Problem and the Kind of every Coverage
// this package returns.
const SourceName = "manifests"

// DefaultMaxFileSize is the largest file read when Options.MaxFileSize is 0.
const DefaultMaxFileSize = 32 << 20

// Options configures Load. The zero value reads no stdin, allows files up to
// DefaultMaxFileSize and defaults namespaces to "default".
type Options struct {
	// Stdin is read for the path "-".
	Stdin io.Reader
	// MaxFileSize is the largest file (or stdin) read, in bytes.
	MaxFileSize int64
	// DefaultNamespace is given to namespaced objects that have no
	// metadata.namespace, as kubectl apply --namespace does. Empty means
	// "default".
	DefaultNamespace string
	// Ignore, when set, is asked about every manifest file met inside a
	// directory argument, with its slash-separated path relative to that
	// directory; true leaves the file unread. Ignored files are listed in
	// a coverage note, never dropped silently. A file named as an argument
	// is always read.
	Ignore func(path string) bool
}

// Load reads every path (a file, a directory read recursively, or "-" for
// stdin) into b. It returns one Coverage per path argument and every Problem
// met. It never stops at the first bad input.
//
// A file named on the command line is read whatever its extension; inside a
// directory only .yaml, .yml and .json files are read, hidden directories
// are skipped, and the same file or directory reached twice (through
// symlinks or overlapping arguments) is read once.
func Load(paths []string, b *inventory.Builder, opts Options) ([]source.Coverage, []source.Problem) {
	if opts.MaxFileSize <= 0 {
		opts.MaxFileSize = DefaultMaxFileSize
	}
	if opts.DefaultNamespace == "" {
		opts.DefaultNamespace = "default"
	}
	l := &loader{
		b:           b,
		opts:        opts,
		filesRead:   map[string]string{},
		dirsVisited: map[string]string{},
	}
	covs := make([]source.Coverage, 0, len(paths))
	for _, p := range paths {
		cov := source.Coverage{Kind: SourceName, Target: p}
		before := len(l.problems)
		// An input that yields nothing is worth saying when nothing else
		// was said about it: a typo in CI or an empty pipe looks the same
		// as a clean run otherwise.
		if l.loadArg(p, &cov) && len(cov.Objects) == 0 && len(cov.Ignored) == 0 && len(l.problems) == before {
			cov.Notes = append(cov.Notes, "no Kubernetes objects found")
		}
		covs = append(covs, cov)
	}
	return covs, l.problems
}

type loader struct {
	b        *inventory.Builder
	opts     Options
	problems []source.Problem
	// filesRead maps the real path of every file read to the path it was
	// shown as, so a file reached twice is read once.
	filesRead map[string]string
	// dirsVisited does the same for directories; it is also what stops
	// directory symlink loops.
	dirsVisited map[string]string
	stdinRead   bool
}

// fileProblem records a problem with a whole file (or path argument).
func (l *loader) fileProblem(path, impact, format string, args ...any) {
	l.problems = append(l.problems, source.Problem{
		Source:   SourceName,
		Location: inventory.Location{Path: path},
		Message:  path + ": " + fmt.Sprintf(format, args...),
		Impact:   impact,
	})
}

const impactFile = "objects in this input are missing from the analysis"

// loadArg reads one path argument. It reports whether the argument was
// read, so that "no objects found" is only said of inputs that were there
// and not already read.
func (l *loader) loadArg(p string, cov *source.Coverage) bool {
	switch p {
	case "":
		l.fileProblem(p, impactFile, "empty path")
		return false
	case "-":
		if l.stdinRead {
			l.fileProblem(p, "", "stdin given more than once; read only the first time")
			return false
		}
		l.stdinRead = true
		if l.opts.Stdin == nil {
			l.fileProblem(p, impactFile, "no standard input to read")
			return false
		}
		data, err := io.ReadAll(io.LimitReader(l.opts.Stdin, l.opts.MaxFileSize+1))
		if err != nil {
			l.fileProblem(p, impactFile, "cannot read stdin: %v", err)
			return false
		}
		if int64(len(data)) > l.opts.MaxFileSize {
			l.fileProblem(p, impactFile, "input is over the %s limit; not read", formatSize(l.opts.MaxFileSize))
			return false
		}
		l.loadBytes(p, data, true, false, cov)
		return cov.Files > 0
	}
	fi, err := os.Stat(p)
	if err != nil {
		l.fileProblem(p, impactFile, "%v", osError(err))
		return false
	}
	if fi.IsDir() {
		real := realPath(p)
		if prev, ok := l.dirsVisited[real]; ok {
			cov.Notes = append(cov.Notes, alreadyRead(p, prev, "directory"))
			return false
		}
		w := &walk{cov: cov, root: p}
		l.walkDir(w, p, real)
		w.notes()
		return true
	}
	real := realPath(p)
	if prev, ok := l.filesRead[real]; ok {
		cov.Notes = append(cov.Notes, alreadyRead(p, prev, "file"))
		return false
	}
	l.filesRead[real] = p
	ext := manifestExt(p)
	l.loadFile(p, ext != "", ext == ".json", cov)
	return cov.Files > 0
}

// walk is the state of reading one directory argument.
type walk struct {
	cov     *source.Coverage
	root    string   // the directory argument, as the user gave it
	skipped []string // files without a manifest extension
	ignored []string // manifest files Options.Ignore left unread
	hidden  []string // hidden directories skipped, as shown to the user
}

// listSome joins the first few items and counts the rest.
func listSome(items []string, show int) string {
	list := strings.Join(items[:min(show, len(items))], ", ")
	if len(items) > show {
		list += fmt.Sprintf(" and %d more", len(items)-show)
	}
	return list
}

func (w *walk) notes() {
	if len(w.hidden) > 0 {
		w.cov.Notes = append(w.cov.Notes, "hidden directories skipped: "+listSome(w.hidden, 5))
	}
	if n := len(w.skipped); n > 0 {
		noun := "files"
		if n == 1 {
			noun = "file"
		}
		w.cov.Notes = append(w.cov.Notes, fmt.Sprintf("%s: %d %s skipped, not .yaml, .yml or .json: %s", w.root, n, noun, listSome(w.skipped, 3)))
	}
	if n := len(w.ignored); n > 0 {
		w.cov.Notes = append(w.cov.Notes, fmt.Sprintf("%s: %d manifest file(s) ignored by config (ignore.paths): %s", w.root, n, listSome(w.ignored, 3)))
	}
}

// ignore reports whether Options.Ignore leaves the file p, met during w,
// unread, and records it if so.
func (l *loader) ignore(w *walk, p string) bool {
	if l.opts.Ignore == nil {
		return false
	}
	rel := strings.TrimLeft(strings.TrimPrefix(p, w.root), string(filepath.Separator))
	if !l.opts.Ignore(filepath.ToSlash(rel)) {
		return false
	}
	w.ignored = append(w.ignored, p)
	return true
}

// walkDir reads dir (shown to the user as dir, really at real) recursively,
// in sorted order.
func (l *loader) walkDir(w *walk, dir, real string) {
	if prev, ok := l.dirsVisited[real]; ok {
		w.cov.Notes = append(w.cov.Notes, alreadyRead(dir, prev, "directory"))
		return
	}
	l.dirsVisited[real] = dir
	entries, err := os.ReadDir(dir)
	if err != nil {
		// ReadDir returns what it could read before the error; read that
		// too.
		l.fileProblem(dir, "objects in this directory are missing from the analysis", "%v", osError(err))
	}
	for _, e := range entries {
		name := e.Name()
		p := joinPath(dir, name)
		mode := e.Type()
		if mode&fs.ModeSymlink != 0 {
			l.walkSymlink(w, p, name)
			continue
		}
		if mode.IsDir() {
			if isHidden(name) {
				w.hidden = append(w.hidden, p)
				continue
			}
			l.walkDir(w, p, filepath.Join(real, name))
			continue
		}
		ext := manifestExt(name)
		if ext == "" {
			w.skipped = append(w.skipped, p)
			continue
		}
		if l.ignore(w, p) {
			continue
		}
		if !mode.IsRegular() {
			// A FIFO or device named x.yaml would block or never end.
			w.cov.Notes = append(w.cov.Notes, p+": not a regular file, skipped")
			continue
		}
		fileReal := filepath.Join(real, name)
		if prev, ok := l.filesRead[fileReal]; ok {
			w.cov.Notes = append(w.cov.Notes, alreadyRead(p, prev, "file"))
			continue
		}
		l.filesRead[fileReal] = p
		l.loadFile(p, true, ext == ".json", w.cov)
	}
}

// walkSymlink follows a symlink met inside a directory: a file symlink is
// read like the file, a directory symlink is walked unless its target was
// already read (which is also what stops loops).
func (l *loader) walkSymlink(w *walk, p, name string) {
	ext := manifestExt(name)
	fi, err := os.Stat(p)
	if err != nil {
		if ext != "" {
			l.fileProblem(p, impactFile, "broken symlink: %v", osError(err))
		} else {
			w.skipped = append(w.skipped, p)
		}
		return
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		l.fileProblem(p, impactFile, "%v", osError(err))
		return
	}
	real = absPath(real)
	switch {
	case fi.IsDir():
		if isHidden(name) {
			w.hidden = append(w.hidden, p)
			return
		}
		l.walkDir(w, p, real)
	case ext == "":
		w.skipped = append(w.skipped, p)
	case l.ignore(w, p):
	case !fi.Mode().IsRegular():
		w.cov.Notes = append(w.cov.Notes, p+": not a regular file, skipped")
	default:
		if prev, ok := l.filesRead[real]; ok {
			w.cov.Notes = append(w.cov.Notes, alreadyRead(p, prev, "file"))
			return
		}
		l.filesRead[real] = p
		l.loadFile(p, true, ext == ".json", w.cov)
	}
}

// loadFile reads one file. claimed says the file's name claims it is a
// manifest (by extension), so unreadable content is a Problem rather than
// a note.
func (l *loader) loadFile(p string, claimed, jsonExt bool, cov *source.Coverage) {
	f, err := os.Open(p)
	if err != nil {
		l.fileProblem(p, impactFile, "%v", osError(err))
		return
	}
	defer func() { _ = f.Close() }() // read-only: nothing to lose on close
	limit := l.opts.MaxFileSize
	// Stat the open file, not the path: it is the file being read.
	fi, err := f.Stat()
	if err != nil {
		l.fileProblem(p, impactFile, "%v", osError(err))
		return
	}
	size := int64(512)
	if fi.Mode().IsRegular() {
		if fi.Size() > limit {
			l.fileProblem(p, impactFile, "file is %s, over the %s limit; not read", formatSize(fi.Size()), formatSize(limit))
			return
		}
		size = fi.Size() + 1 // +1 to see EOF without growing
	}
	// Read through a limit even for regular files: the file may grow, and
	// a named pipe or /dev/fd/N has no size to check first.
	buf := bytes.NewBuffer(make([]byte, 0, size))
	if _, err := buf.ReadFrom(io.LimitReader(f, limit+1)); err != nil {
		l.fileProblem(p, impactFile, "%v", osError(err))
		return
	}
	if int64(buf.Len()) > limit {
		l.fileProblem(p, impactFile, "file is over the %s limit; not read", formatSize(limit))
		return
	}
	l.loadBytes(p, buf.Bytes(), claimed, jsonExt, cov)
}

// binarySniffLen is how much of a file is searched for a NUL byte, as git
// and grep do.
const binarySniffLen = 8 << 10

// loadBytes decodes the content of one file (or stdin). data is owned by
// the loader from here on and may be modified.
func (l *loader) loadBytes(p string, data []byte, claimed, jsonExt bool, cov *source.Coverage) {
	if why := binaryReason(data); why != "" {
		msg := "binary content" + why + ", not read"
		if claimed {
			l.fileProblem(p, impactFile, "%s", msg)
		} else {
			cov.Notes = append(cov.Notes, p+": "+msg)
		}
		return
	}
	cov.Files++
	data = bytes.TrimPrefix(data, utf8BOM)
	f := &fileLoad{l: l, path: p, cov: cov}
	f.decode(data, jsonExt)
}

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// binaryReason returns "" for text, or a parenthesised detail (possibly
// empty) for content that is not UTF-8 text.
func binaryReason(data []byte) string {
	if bytes.HasPrefix(data, []byte{0xFF, 0xFE}) || bytes.HasPrefix(data, []byte{0xFE, 0xFF}) {
		return " (UTF-16; convert it to UTF-8)"
	}
	if bytes.IndexByte(data[:min(len(data), binarySniffLen)], 0) >= 0 {
		return " (NUL byte)"
	}
	if !utf8.Valid(data) {
		for i := 0; i < len(data); {
			r, n := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && n <= 1 {
				return fmt.Sprintf(" (not valid UTF-8 at line %d)", 1+bytes.Count(data[:i], []byte{'\n'}))
			}
			i += n
		}
		return " (not valid UTF-8)"
	}
	return ""
}

// manifestExt returns the manifest extension of name (".yaml", ".yml" or
// ".json", whatever its case), or "".
func manifestExt(name string) string {
	ext := strings.ToLower(filepath.Ext(name))
	switch ext {
	case ".yaml", ".yml", ".json":
		return ext
	}
	return ""
}

// joinPath joins a name to a directory as the user wrote the directory
// ("./deploy/" gives "./deploy/x.yaml"), so that paths in messages start
// with what was typed; filepath.Join would clean it.
func joinPath(dir, name string) string {
	if strings.HasSuffix(dir, string(filepath.Separator)) {
		return dir + name
	}
	return dir + string(filepath.Separator) + name
}

// alreadyRead notes a file or directory reached a second time (named
// twice, or through a symlink).
func alreadyRead(p, prev, what string) string {
	if p == prev {
		return p + ": already read"
	}
	return fmt.Sprintf("%s: same %s as %s, already read", p, what, prev)
}

func isHidden(name string) bool { return len(name) > 1 && name[0] == '.' && name != ".." }

// osError drops the operation and path from a *fs.PathError: messages
// already start with the path, as the user gave it.
func osError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return filepath.Clean(p)
}

// realPath resolves symlinks in p so that the same file reached two ways is
// recognised. When that fails the absolute path is good enough: it only
// serves to avoid reading a file twice.
func realPath(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return absPath(r)
	}
	return absPath(p)
}

// formatSize prints a size in the largest binary unit that keeps it at or
// above 1, rounded up to one decimal so that a file just over the limit is
// never shown as equal to it.
func formatSize(n int64) string {
	units := []struct {
		size int64
		name string
	}{{1 << 30, "GiB"}, {1 << 20, "MiB"}, {1 << 10, "KiB"}}
	for _, u := range units {
		if n >= u.size {
			tenths := (n*10 + u.size - 1) / u.size
			if tenths%10 == 0 {
				return fmt.Sprintf("%d %s", tenths/10, u.name)
			}
			return fmt.Sprintf("%d.%d %s", tenths/10, tenths%10, u.name)
		}
	}
	if n == 1 {
		return "1 byte"
	}
	return fmt.Sprintf("%d bytes", n)
}
