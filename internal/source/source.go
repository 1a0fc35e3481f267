// Package source holds what every source of the inventory (manifests, the
// live cluster, git, the embedded bootstrap policy) reports besides the
// objects themselves: the problems it met and how much it covered. Sources
// never drop an input silently; whatever they could not read becomes a
// Problem, and whatever they read but did not use becomes a note in
// Coverage.
package source

import (
	"sort"

	"github.com/keyhole-sec/keyhole/internal/inventory"
)

// Problem is one input that could not be read or analysed. Message must
// name the thing (file and document, object, or resource) and must never
// contain a Secret value.
type Problem struct {
	// Source is the kind of source: "manifests", "cluster", "git" or
	// "bootstrap".
	Source   string
	Location inventory.Location
	// Object is set when the problem concerns one object.
	Object *inventory.Ref
	// Resource is set for a live resource that could not be listed, e.g.
	// "pods".
	Resource string
	Message  string
	// Impact says what the analysis lacks because of it, e.g. "indirect
	// paths through pods not analysed".
	Impact string
}

// Coverage describes what one source read.
type Coverage struct {
	// Kind is "manifests", "cluster", "git" or "bootstrap".
	Kind string
	// Target is what was read: a path, "-" for stdin, or a cluster's
	// server address.
	Target string
	// Objects counts the objects read into the inventory, per kind.
	Objects map[string]int
	// Ignored counts objects of kinds the analysis does not read, per
	// kind, e.g. {"Service": 3}.
	Ignored map[string]int
	// Files is the number of files read (manifest sources).
	Files int
	// Notes lists inputs that were read but not analysed, each naming the
	// input, e.g. "docs/x.yaml (document 1): not a Kubernetes object".
	Notes []string
}

// Count adds one object of kind to m, creating it when nil.
func Count(m *map[string]int, kind string) {
	if *m == nil {
		*m = map[string]int{}
	}
	(*m)[kind]++
}

// SortProblems orders problems by location, object and message, so reports
// are stable whatever order the inputs were read in.
func SortProblems(ps []Problem) {
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := ps[i], ps[j]
		if a.Source != b.Source {
			return a.Source < b.Source
		}
		if a.Location.Path != b.Location.Path {
			return a.Location.Path < b.Location.Path
		}
		if a.Location.Document != b.Location.Document {
			return a.Location.Document < b.Location.Document
		}
		if a.Resource != b.Resource {
			return a.Resource < b.Resource
		}
		return a.Message < b.Message
	})
}
