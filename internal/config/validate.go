package config

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/bmatcuk/doublestar/v4"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"

	"github.com/keyhole-sec/keyhole/internal/environment"
	"github.com/keyhole-sec/keyhole/internal/finding"
	"github.com/keyhole-sec/keyhole/internal/rbac"
)

// validate checks what the types alone do not: versions, rule ids,
// severities, subjects, globs and durations.
func (d *decoder) validate(c *Config) {
	switch c.APIVersion {
	case APIVersion:
	case "":
		if !d.reported["apiVersion"] { // else reported by the walk
			d.problem("apiVersion", d.at("apiVersion"), "missing: want %s", APIVersion)
		}
	default:
		d.problem("apiVersion", d.at("apiVersion"), "%q is not supported: want %s", c.APIVersion, APIVersion)
	}
	switch c.Kind {
	case Kind:
	case "":
		if !d.reported["kind"] { // else reported by the walk
			d.problem("kind", d.at("kind"), "missing: want %s", Kind)
		}
	default:
		d.problem("kind", d.at("kind"), "%q is not a keyhole config: want %s", c.Kind, Kind)
	}
	d.validateRules(c)
	d.validateSubjects(c)
	d.validateEnvironments(c)
	if c.ManyPrincipals != nil && *c.ManyPrincipals < 1 {
		d.problem("manyPrincipals", d.at("manyPrincipals"), "must be at least 1, not %d", *c.ManyPrincipals)
	}
	for i, p := range c.Ignore.Paths {
		field := fmt.Sprintf("ignore.paths[%d]", i)
		switch {
		case strings.TrimSpace(p) == "":
			d.problem(field, d.at(field), "empty pattern")
		case strings.HasPrefix(p, "/"):
			d.problem(field, d.at(field), "%q is absolute: patterns match paths relative to each --manifests directory", p)
		case !doublestar.ValidatePattern(p):
			d.problem(field, d.at(field), "%q is not a valid glob", p)
		}
	}
	if m := c.Paths.MaxDepth; m != nil && (*m < 1 || *m > MaxPathDepth) {
		d.problem("paths.maxDepth", d.at("paths.maxDepth"), "must be from 1 to %d, not %d", MaxPathDepth, *m)
	}
	if m := c.Paths.MaxPaths; m != nil && *m < 1 {
		d.problem("paths.maxPaths", d.at("paths.maxPaths"), "must be at least 1, not %d", *m)
	}
	if l := c.Paths.PodSecurityDefault; l != "" && !slices.Contains(PodSecurityLevels, l) {
		d.problem("paths.podSecurityDefault", d.at("paths.podSecurityDefault"), "%q is not a Pod Security level: want one of %s", l, strings.Join(PodSecurityLevels, ", "))
	}
	if c.StaleAfter != "" {
		dur, err := ParseDuration(c.StaleAfter)
		switch {
		case err != nil:
			d.problem("staleAfter", d.at("staleAfter"), "%v", err)
		case dur <= 0:
			d.problem("staleAfter", d.at("staleAfter"), "must be positive, not %q", c.StaleAfter)
		default:
			c.staleAfter = dur
		}
	}
}

func (d *decoder) validateRules(c *Config) {
	ids := make([]string, 0, len(c.Rules))
	for id := range c.Rules {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var known []string
	for _, r := range finding.Catalog() {
		known = append(known, r.ID)
	}
	for _, id := range ids {
		field := "rules." + id
		if _, ok := finding.Lookup(id); !ok {
			d.problem(field, d.at(field), "unknown rule id%s", hint(id, known))
			continue
		}
		r := c.Rules[id]
		if r.Severity != "" {
			if _, err := finding.ParseSeverity(r.Severity); err != nil {
				d.problem(field+".severity", d.at(field+".severity"), "%v", err)
			} else if r.Severity != strings.ToLower(r.Severity) {
				d.problem(field+".severity", d.at(field+".severity"), "write severities in lower case: %q", strings.ToLower(r.Severity))
			}
		}
		if r.Enabled != nil && !*r.Enabled && r.Severity != "" {
			d.problem(field, d.at(field), "a disabled rule has no severity: remove one of enabled and severity")
		}
	}
}

var subjectKinds = []string{rbac.KindGroup, rbac.KindServiceAccount, rbac.KindUser}

func (d *decoder) validateSubjects(c *Config) {
	seen := map[rbac.Subject]string{}
	for i, s := range c.ExpectedReaders {
		field := fmt.Sprintf("expectedReaders[%d]", i)
		at := d.at(field)
		switch s.Kind {
		case rbac.KindServiceAccount:
			if s.Namespace == "" {
				d.problem(field, at, "ServiceAccount %q needs a namespace", s.Name)
			} else if errs := utilvalidation.IsDNS1123Label(s.Namespace); len(errs) > 0 {
				d.problem(field+".namespace", d.at(field+".namespace"), "%q is not a namespace name: %s", s.Namespace, errs[0])
			}
		case rbac.KindUser, rbac.KindGroup:
			if s.Namespace != "" {
				d.problem(field+".namespace", d.at(field+".namespace"), "only a ServiceAccount has a namespace, not a %s", s.Kind)
			}
		case "":
			if !d.reported[field+".kind"] { // else reported by the walk
				d.problem(field, at, "kind missing: want one of %s", strings.Join(subjectKinds, ", "))
			}
			continue
		default:
			d.problem(field+".kind", d.at(field+".kind"), "%q is not a subject kind%s", s.Kind, hint(s.Kind, subjectKinds))
			continue
		}
		if s.Name == "" {
			if !d.reported[field+".name"] { // else reported by the walk
				d.problem(field, at, "%s without a name", s.Kind)
			}
			continue
		}
		key := s.rbac()
		if key.IsEveryone() {
			// An allowlist entry for everyone would silence KH101, the
			// one finding that must never be silenced by configuration.
			d.problem(field, at, "%s stands for everyone (%s) and cannot be an expected reader", key, key.Covers())
			continue
		}
		if prev, dup := seen[key]; dup {
			d.problem(field, at, "%s is listed twice (also %s)", key, prev)
			continue
		}
		seen[key] = field
	}
}

// validateEnvironments checks names and selectors, and keeps the parsed
// list only when every entry is valid. Whether two selectors overlap
// depends on the namespaces' labels, so that is checked at analysis time
// (docs/environments.md).
func (d *decoder) validateEnvironments(c *Config) {
	if len(c.Environments) == 1 {
		d.problem("environments", d.at("environments"), "one environment has no lower one to be exposed to: list at least two, lowest first")
		return
	}
	names := map[string]string{}
	selectors := map[string]string{}
	var envs []environment.Environment
	ok := true
	for i, e := range c.Environments {
		field := fmt.Sprintf("environments[%d]", i)
		switch {
		case e.Name == "":
			ok = false
			if !d.reported[field+".name"] { // else reported by the walk
				d.problem(field, d.at(field), "environment without a name")
			}
		case len(utilvalidation.IsDNS1123Label(e.Name)) > 0:
			ok = false
			d.problem(field+".name", d.at(field+".name"), "%q is not a valid name: %s", e.Name, utilvalidation.IsDNS1123Label(e.Name)[0])
		case names[e.Name] != "":
			ok = false
			d.problem(field+".name", d.at(field+".name"), "%q is listed twice (also %s)", e.Name, names[e.Name])
		default:
			names[e.Name] = field
		}
		if e.NamespaceSelector == "" {
			ok = false
			switch {
			case d.reported[field+".namespaceSelector"]: // by the walk
			case d.at(field+".namespaceSelector") != nil:
				d.problem(field+".namespaceSelector", d.at(field+".namespaceSelector"), "an empty selector selects every namespace")
			default:
				d.problem(field, d.at(field), "environment %q without a namespaceSelector", e.Name)
			}
			continue
		}
		env, err := environment.Parse(e.Name, e.NamespaceSelector)
		if err != nil {
			ok = false
			d.problem(field+".namespaceSelector", d.at(field+".namespaceSelector"), "%v", err)
			continue
		}
		canonical := env.Selector.String()
		if prev, dup := selectors[canonical]; dup {
			ok = false
			d.problem(field+".namespaceSelector", d.at(field+".namespaceSelector"), "the same selector as %s: every namespace it selects would be in both", prev)
			continue
		}
		selectors[canonical] = field
		envs = append(envs, env)
	}
	if ok {
		c.environments = envs
	}
}
