// Package baseline owns keyhole's baseline file (apiVersion
// keyhole.io/v1alpha1, kind Baseline): the fingerprints of findings a team
// has accepted, so that a CI gate fails on new findings only. It writes a
// baseline from a report, reads one back strictly (a corrupt file, or one
// of another version, is an error naming the file, never half-read), and
// suppresses the findings it lists. Fingerprints are the analysis's
// (rule, object and a discriminator; never a value, and never a path but
// for git findings, whose place in the repository is their identity), so
// a baseline survives file moves, reordering and unrelated edits.
package baseline

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/keyhole-sec/keyhole/internal/inventory"
	"github.com/keyhole-sec/keyhole/internal/report"
)

// APIVersion and Kind identify a baseline file.
const (
	APIVersion = "keyhole.io/v1alpha1"
	Kind       = "Baseline"
)

// SuppressedBy is the Suppressed.By of findings a baseline suppresses.
const SuppressedBy = "baseline"

// MaxFileSize bounds what Load reads.
const MaxFileSize = 64 << 20

// File is the baseline document.
type File struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	// Findings are sorted by rule, object, then fingerprint.
	Findings []Entry `json:"findings"`
}

// Entry is one accepted finding. Only the fingerprint is matched; rule,
// object and severity are there for the people reviewing the file.
type Entry struct {
	Fingerprint string           `json:"fingerprint"`
	Rule        string           `json:"rule"`
	Severity    string           `json:"severity"`
	Object      report.ObjectRef `json:"object"`
}

// FromReport records the report's findings that count: those not
// suppressed, and those the baseline in use suppressed (so that rewriting
// a baseline keeps what is still found and drops what was fixed). Findings
// an annotation suppresses are left out: the annotation is their record.
func FromReport(r *report.Report) *File {
	f := &File{APIVersion: APIVersion, Kind: Kind, Findings: []Entry{}}
	seen := map[string]bool{}
	for _, fd := range r.Findings {
		if fd.Suppressed != nil && fd.Suppressed.By != SuppressedBy {
			continue
		}
		if seen[fd.Fingerprint] {
			continue
		}
		seen[fd.Fingerprint] = true
		f.Findings = append(f.Findings, Entry{Fingerprint: fd.Fingerprint, Rule: fd.Rule, Severity: fd.Severity, Object: fd.Object})
	}
	sort.Slice(f.Findings, func(i, j int) bool {
		a, b := f.Findings[i], f.Findings[j]
		if a.Rule != b.Rule {
			return a.Rule < b.Rule
		}
		if a.Object != b.Object {
			return inventory.Ref(a.Object).Less(inventory.Ref(b.Object))
		}
		return a.Fingerprint < b.Fingerprint
	})
	return f
}

// Write writes f to name, mode 0600, replacing it atomically: a CI job
// killed halfway leaves the old baseline, not half a new one.
func Write(name string, f *File) (err error) {
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	tmp, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".*")
	if err != nil {
		return fmt.Errorf("%s: %w", name, osErr(err))
	}
	defer func() {
		if err != nil {
			_ = os.Remove(tmp.Name()) // best effort: the error below matters more
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("%s: %w", name, osErr(err))
	}
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("%s: %w", name, osErr(err))
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("%s: %w", name, osErr(err))
	}
	if err := os.Rename(tmp.Name(), name); err != nil {
		return fmt.Errorf("%s: %w", name, osErr(err))
	}
	return nil
}

// Baseline is a loaded baseline.
type Baseline struct {
	name    string
	entries map[string]Entry
}

// Load reads and checks the baseline file name. Every error names the
// file; a baseline that cannot be trusted is never half-used.
func Load(name string) (*Baseline, error) {
	fh, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("baseline %s: %w", name, osErr(err))
	}
	defer func() { _ = fh.Close() }() // read-only
	data, err := io.ReadAll(io.LimitReader(fh, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("baseline %s: %w", name, osErr(err))
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("baseline %s: over %d MiB: not a keyhole baseline", name, MaxFileSize>>20)
	}
	return Parse(name, data)
}

// Parse checks a baseline document; name is where it came from.
func Parse(name string, data []byte) (*Baseline, error) {
	fail := func(format string, args ...any) (*Baseline, error) {
		return nil, fmt.Errorf("baseline %s: "+format, append([]any{name}, args...)...)
	}
	// Version first, so that a future version's other changes are
	// reported as what they are.
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return fail("not a keyhole baseline: %s", jsonError(data, err))
	}
	if head.Kind != Kind {
		if head.Kind == "" {
			return fail("not a keyhole baseline: no kind (want %s; write one with --write-baseline)", Kind)
		}
		return fail("kind %q is not a baseline (want %s; write one with --write-baseline)", head.Kind, Kind)
	}
	if head.APIVersion != APIVersion {
		return fail("apiVersion %q is not supported (want %s): rewrite the baseline with this keyhole's --write-baseline", head.APIVersion, APIVersion)
	}
	var f File
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&f); err != nil {
		return fail("not a keyhole baseline: %s", jsonError(data, err))
	}
	if dec.More() {
		return fail("not a keyhole baseline: data after the document at %s", position(data, dec.InputOffset()))
	}
	b := &Baseline{name: name, entries: make(map[string]Entry, len(f.Findings))}
	for i, e := range f.Findings {
		if !validFingerprint(e.Fingerprint) {
			return fail("findings[%d]: fingerprint %q is not 32 lower-case hex digits", i, e.Fingerprint)
		}
		b.entries[e.Fingerprint] = e
	}
	return b, nil
}

func validFingerprint(s string) bool {
	if len(s) != 32 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Len is the number of findings the baseline accepts.
func (b *Baseline) Len() int { return len(b.entries) }

// Name is the file the baseline was read from.
func (b *Baseline) Name() string { return b.name }

// Suppress suppresses a finding the baseline lists.
func (b *Baseline) Suppress(f report.Finding) *report.Suppressed {
	if _, ok := b.entries[f.Fingerprint]; !ok {
		return nil
	}
	return &report.Suppressed{By: SuppressedBy, Reason: "in baseline " + b.name}
}

// Unmatched returns the entries no finding of r matched (fixed, or whose
// object is gone), sorted by fingerprint.
func (b *Baseline) Unmatched(r *report.Report) []Entry {
	found := map[string]bool{}
	for _, f := range r.Findings {
		found[f.Fingerprint] = true
	}
	var out []Entry
	for fp, e := range b.entries {
		if !found[fp] {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Fingerprint < out[j].Fingerprint })
	return out
}

// jsonError says where a JSON error is, by line and column, without
// quoting the input.
func jsonError(data []byte, err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		if se.Error() == "unexpected end of JSON input" {
			return "truncated or empty JSON"
		}
		// Offset counts the bytes read, the bad one included.
		return fmt.Sprintf("invalid JSON at %s: %v", position(data, se.Offset-1), se)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field == "" {
			return fmt.Sprintf("the document is a JSON %s, want an object", te.Value)
		}
		return fmt.Sprintf("at %s: %s is a JSON %s, want %s", position(data, te.Offset-1), te.Field, te.Value, te.Type)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return "truncated or empty JSON"
	}
	return err.Error()
}

// position turns a byte offset into "line L, column C".
func position(data []byte, offset int64) string {
	offset = min(max(offset, 0), int64(len(data)))
	before := data[:offset]
	line := 1 + bytes.Count(before, []byte{'\n'})
	col := int(offset) - bytes.LastIndexByte(before, '\n')
	return fmt.Sprintf("line %d, column %d", line, col)
}

func osErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}
