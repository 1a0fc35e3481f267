package workload

import (
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/keyhole-sec/keyhole/internal/finding"
	"github.com/keyhole-sec/keyhole/internal/inventory"
)

// envSecrets reports every Secret a container takes as environment
// variables (KH201): one result per variable from secretKeyRef, one per
// Secret from envFrom. It counts each such container once per Secret in
// a.envInjections.
func (a *analyzer) envSecrets(s podSpec) {
	ns := s.ref.Namespace
	for _, c := range containers(s.spec) {
		var injected []string // the Secrets' names, each once
		inject := func(name string) {
			if !slices.Contains(injected, name) {
				injected = append(injected, name)
			}
		}
		for _, e := range c.env {
			if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
				continue
			}
			ref := e.ValueFrom.SecretKeyRef
			secret := inventory.Ref{Kind: "Secret", Namespace: ns, Name: ref.Name}
			inject(ref.Name)
			a.add(finding.Result{
				Rule:          finding.SecretInEnvironment,
				Object:        s.ref,
				Message:       s.ref.String() + ": " + c.String() + " takes environment variable " + e.Name + " from key " + ref.Key + " of " + secret.String(),
				Discriminator: []string{c.name, "env", e.Name},
				Key:           ref.Key,
			})
		}
		for _, from := range c.envFrom {
			if from.SecretRef == nil {
				continue
			}
			secret := inventory.Ref{Kind: "Secret", Namespace: ns, Name: from.SecretRef.Name}
			inject(from.SecretRef.Name)
			what := "every key of " + secret.String()
			if from.Prefix != "" {
				what += " (prefixed " + from.Prefix + ")"
			}
			a.add(finding.Result{
				Rule:          finding.SecretInEnvironment,
				Object:        s.ref,
				Message:       s.ref.String() + ": " + c.String() + " takes " + what + " as environment variables (envFrom)",
				Discriminator: []string{c.name, "envFrom", from.SecretRef.Name},
			})
		}
		for _, name := range injected {
			a.envInjections[inventory.Ref{Kind: "Secret", Namespace: ns, Name: name}]++
		}
	}
}

// envCredentials reports literal environment values that look like
// credentials (KH202). Values from valueFrom are references, not literals.
func (a *analyzer) envCredentials(s podSpec) {
	for _, c := range containers(s.spec) {
		for _, e := range c.env {
			if e.ValueFrom != nil || e.Value == "" {
				continue
			}
			d, ok := Detect(e.Name, e.Value)
			if !ok {
				continue
			}
			a.add(finding.Result{
				Rule:          finding.HardcodedEnvCredential,
				Object:        s.ref,
				Message:       s.ref.String() + ": " + c.String() + " sets environment variable " + e.Name + " to a hard-coded credential: " + describe(d),
				Discriminator: discriminator([]string{c.name, e.Name}, d),
			})
		}
	}
}

// configMapCredentials reports ConfigMap entries that hold credentials
// (KH401): a value that is one, or a configuration file with one inside.
// Binary entries are read as text when they are UTF-8; otherwise only key
// stores are recognised, by their file name.
func (a *analyzer) configMapCredentials() {
	for _, cm := range a.inv.ConfigMaps {
		ref := inventory.Ref{Kind: "ConfigMap", Namespace: cm.Namespace, Name: cm.Name}
		for _, key := range sortedKeys(cm.Data) {
			if d, ok := Detect(key, cm.Data[key]); ok {
				a.configMapResult(ref, key, d)
			}
		}
		for _, key := range sortedKeys(cm.BinaryData) {
			data := cm.BinaryData[key]
			if utf8.Valid(data) {
				if d, ok := Detect(key, string(data)); ok {
					a.configMapResult(ref, key, d)
				}
				continue
			}
			if len(data) > 0 && isKeyStoreName(key) {
				a.configMapResult(ref, key, Detection{Reason: "key store file", Length: len(data)})
			}
		}
	}
}

func (a *analyzer) configMapResult(ref inventory.Ref, key string, d Detection) {
	a.add(finding.Result{
		Rule:          finding.ConfigMapCredential,
		Object:        ref,
		Message:       ref.String() + ": key " + key + " holds a credential: " + describe(d),
		Discriminator: discriminator([]string{key}, d),
		Key:           key,
	})
}

// describe says what was found, never what the value is.
func describe(d Detection) string {
	s := d.Reason
	if d.Field != "" {
		s += " in field " + d.Field
	}
	return s + " (" + LengthClass(d.Length) + ")"
}

// discriminator tells apart the credentials of one object: where they
// are, never what they are.
func discriminator(where []string, d Detection) []string {
	if d.Field != "" {
		return append(where, d.Field)
	}
	return where
}

var keyStoreSuffixes = []string{".jks", ".jceks", ".keystore", ".p12", ".pfx", ".bcfks", ".kdbx"}

func isKeyStoreName(name string) bool {
	lower := strings.ToLower(name)
	for _, s := range keyStoreSuffixes {
		if len(lower) > len(s) && strings.HasSuffix(lower, s) {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
