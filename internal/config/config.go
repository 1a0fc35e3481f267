// Package config owns keyhole's configuration file (apiVersion
// keyhole.io/v1alpha1, kind Config): decoding it strictly, so that a
// misspelt field is an error and not a silently ignored line, validating it
// before anything runs, and turning it into the options the analysis and
// the manifest source take. Every problem names the file, the field and the
// line. docs/configuration.md is the user's reference; Example is the
// documented example, checked by the tests to stay valid.
package config

import (
	_ "embed" // the documented example
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/bmatcuk/doublestar/v4"

	"github.com/keyhole-sec/keyhole/internal/environment"
	"github.com/keyhole-sec/keyhole/internal/finding"
	"github.com/keyhole-sec/keyhole/internal/rbac"
)

// APIVersion and Kind identify a config file.
const (
	APIVersion = "keyhole.io/v1alpha1"
	Kind       = "Config"
)

// MaxFileSize bounds what Load reads: a config is a few lines.
const MaxFileSize = 1 << 20

// Example is a documented config that uses every field.
//
//go:embed example.yaml
var Example string

// Config is a decoded, validated config file. The zero value is the empty
// config: no overrides, nothing expected beyond the control plane.
type Config struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	// Rules overrides catalog rules by id.
	Rules map[string]Rule `json:"rules,omitempty"`
	// ExpectedReaders is the allowlist: subjects whose reads never raise
	// a Secret's severity.
	ExpectedReaders []Subject `json:"expectedReaders,omitempty"`
	// ManyPrincipals is the number of distinct principals above which a
	// Secret is readable "by many" (KH103).
	ManyPrincipals *int `json:"manyPrincipals,omitempty"`
	// Ignore names manifest files not to read.
	Ignore Ignore `json:"ignore,omitempty"`
	// StaleAfter is how old a credential may get before it is stale: a Go
	// duration ("2160h") or a number of days ("90d").
	StaleAfter string `json:"staleAfter,omitempty"`
	// Paths tunes the indirect-exposure analysis.
	Paths Paths `json:"paths,omitempty"`
	// Environments are the environments namespaces belong to, lowest
	// first (docs/environments.md): a Secret readable from a lower one
	// raises KH610.
	Environments []Environment `json:"environments,omitempty"`

	staleAfter   time.Duration
	environments []environment.Environment
}

// Environment is one environment: its name, and a label selector (in
// Kubernetes syntax) choosing its namespaces.
type Environment struct {
	Name              string `json:"name"`
	NamespaceSelector string `json:"namespaceSelector"`
}

// Paths tunes the indirect-exposure analysis (docs/paths.md).
type Paths struct {
	// MaxDepth is the longest chain followed, in steps.
	MaxDepth *int `json:"maxDepth,omitempty"`
	// MaxPaths is the search's budget, in recorded paths: past it the
	// analysis reports direct readers only. Memory grows with it.
	MaxPaths *int `json:"maxPaths,omitempty"`
	// PodSecurityDefault is the Pod Security level of namespaces without
	// a pod-security.kubernetes.io/enforce label: the cluster's admission
	// configuration default (privileged unless it says otherwise).
	PodSecurityDefault string `json:"podSecurityDefault,omitempty"`
}

// MaxPathDepth bounds paths.maxDepth: longer chains are followed by
// nobody and cost time.
const MaxPathDepth = 10

// PodSecurityLevels are the Pod Security Admission levels.
var PodSecurityLevels = []string{"privileged", "baseline", "restricted"}

// Rule is one rule's override.
type Rule struct {
	// Enabled false turns the rule off.
	Enabled *bool `json:"enabled,omitempty"`
	// Severity replaces the rule's default severity for its findings.
	Severity string `json:"severity,omitempty"`
}

// Subject is a User, Group or ServiceAccount, as in a RoleBinding.
type Subject struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

// Ignore holds what is not read.
type Ignore struct {
	// Paths are globs (with ** for any number of directories) matched
	// against the path of each manifest file relative to the --manifests
	// directory it is found in.
	Paths []string `json:"paths,omitempty"`
}

// Load reads and validates the config file at name. The error, when not
// nil, is an *Error listing every problem found.
func Load(name string) (*Config, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, &Error{File: name, Problems: []Problem{{Message: osMessage(err)}}}
	}
	defer func() { _ = f.Close() }() // read-only
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, &Error{File: name, Problems: []Problem{{Message: osMessage(err)}}}
	}
	if len(data) > MaxFileSize {
		return nil, &Error{File: name, Problems: []Problem{{Message: fmt.Sprintf("over %d bytes: not a keyhole config", MaxFileSize)}}}
	}
	return Parse(name, data)
}

// Parse decodes and validates a config; name is the file it came from, used
// in messages.
func Parse(name string, data []byte) (*Config, error) {
	d := &decoder{file: name}
	c := d.decode(data)
	if c != nil {
		d.validate(c)
	}
	if len(d.problems) > 0 {
		return nil, d.err()
	}
	return c, nil
}

// Overrides returns the rule overrides in the analysis's terms.
func (c *Config) Overrides() map[string]finding.Override {
	if c == nil || len(c.Rules) == 0 {
		return nil
	}
	out := make(map[string]finding.Override, len(c.Rules))
	for id, r := range c.Rules {
		var o finding.Override
		o.Disabled = r.Enabled != nil && !*r.Enabled
		if r.Severity != "" {
			sev, _ := finding.ParseSeverity(r.Severity) // validated
			o.Severity = &sev
		}
		out[id] = o
	}
	return out
}

// Expected returns the allowlist as RBAC subjects, normalised as RBAC does
// (a User named system:serviceaccount:NS:NAME is that ServiceAccount).
func (c *Config) Expected() []rbac.Subject {
	if c == nil {
		return nil
	}
	out := make([]rbac.Subject, 0, len(c.ExpectedReaders))
	for _, s := range c.ExpectedReaders {
		out = append(out, s.rbac())
	}
	return out
}

func (s Subject) rbac() rbac.Subject {
	if s.Kind == rbac.KindUser {
		if ns, name, ok := rbac.SplitServiceAccountUsername(s.Name); ok {
			return rbac.Subject{Kind: rbac.KindServiceAccount, Namespace: ns, Name: name}
		}
	}
	return rbac.Subject{Kind: s.Kind, Namespace: s.Namespace, Name: s.Name}
}

// ManyPrincipalsLimit returns manyPrincipals, or 0 when unset (the
// analysis's default).
func (c *Config) ManyPrincipalsLimit() int {
	if c == nil || c.ManyPrincipals == nil {
		return 0
	}
	return *c.ManyPrincipals
}

// PathDepth returns paths.maxDepth, or 0 when unset (the analysis's
// default).
func (c *Config) PathDepth() int {
	if c == nil || c.Paths.MaxDepth == nil {
		return 0
	}
	return *c.Paths.MaxDepth
}

// PathBudget returns paths.maxPaths, or 0 when unset (the analysis's
// default, paths.DefaultMaxHits).
func (c *Config) PathBudget() int {
	if c == nil || c.Paths.MaxPaths == nil {
		return 0
	}
	return *c.Paths.MaxPaths
}

// PodSecurityDefault returns paths.podSecurityDefault, or "" when unset.
func (c *Config) PodSecurityDefault() string {
	if c == nil {
		return ""
	}
	return c.Paths.PodSecurityDefault
}

// EnvironmentList returns the environments, lowest first, with their
// selectors parsed; nil when none are configured.
func (c *Config) EnvironmentList() []environment.Environment {
	if c == nil {
		return nil
	}
	return c.environments
}

// StaleAfterDuration returns staleAfter, or 0 when unset.
func (c *Config) StaleAfterDuration() time.Duration {
	if c == nil {
		return 0
	}
	return c.staleAfter
}

// IgnoreFunc returns the matcher for ignore.paths, or nil when there are
// none. A path is ignored when a pattern matches it or one of its parent
// directories, so "vendor" ignores everything under vendor/.
func (c *Config) IgnoreFunc() func(path string) bool {
	if c == nil || len(c.Ignore.Paths) == 0 {
		return nil
	}
	patterns := make([]string, len(c.Ignore.Paths))
	for i, p := range c.Ignore.Paths {
		patterns[i] = strings.TrimSuffix(p, "/")
	}
	return func(p string) bool {
		for dir := p; dir != "." && dir != "/" && dir != ""; dir = path.Dir(dir) {
			for _, pat := range patterns {
				if ok, _ := doublestar.Match(pat, dir); ok { // patterns were validated
					return true
				}
			}
		}
		return false
	}
}

// ParseDuration accepts a Go duration ("36h", "1h30m") or a whole number
// of days ("90d").
func ParseDuration(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 || days == "" || days[0] == '+' {
			return 0, fmt.Errorf("%q is not a number of days (want, say, 90d)", s)
		}
		const maxDays = int(time.Duration(1<<63-1) / (24 * time.Hour))
		if n > maxDays {
			return 0, fmt.Errorf("%q is too long", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (want, say, 90d or 2160h)", s)
	}
	return d, nil
}

// Error is every problem of one config file.
type Error struct {
	File     string
	Problems []Problem
}

// Problem is one problem, with its position when known.
type Problem struct {
	Line, Column int    // from 1; 0 when unknown
	Field        string // dotted path, e.g. rules.KH102.severity; "" for the file
	Message      string
}

// Lines returns one self-contained line per problem:
// FILE:LINE:COLUMN: FIELD: MESSAGE.
func (e *Error) Lines() []string {
	out := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		var b strings.Builder
		b.WriteString(e.File)
		if p.Line > 0 {
			fmt.Fprintf(&b, ":%d", p.Line)
			if p.Column > 0 {
				fmt.Fprintf(&b, ":%d", p.Column)
			}
		}
		b.WriteString(": ")
		if p.Field != "" {
			b.WriteString(p.Field + ": ")
		}
		b.WriteString(p.Message)
		out[i] = b.String()
	}
	return out
}

func (e *Error) Error() string { return strings.Join(e.Lines(), "\n") }

func sortProblems(ps []Problem) {
	sort.SliceStable(ps, func(i, j int) bool {
		if ps[i].Line != ps[j].Line {
			return ps[i].Line < ps[j].Line
		}
		return ps[i].Column < ps[j].Column
	})
}

// osMessage drops the operation and path from a *fs.PathError: messages
// already start with the file name.
func osMessage(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
