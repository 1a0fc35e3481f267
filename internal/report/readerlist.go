package report

import (
	"bytes"
	"encoding/json"
	"iter"
)

// ReaderList is a Secret's readers, sorted by subject: one JSON array.
//
// In memory a list can be an overlay: the entries a Secret shares with
// other Secrets (most of a namespace's readers, the cluster-wide ones)
// stay one shared slice, and the Secret's own entries (its
// name-restricted grants, the pods and nodes that use it) are placed
// into it, each before a shared entry or in its place. A permissive
// cluster has thousands of readers on every Secret; copying them into
// each Secret's list cost tens of millions of entries and gigabytes at
// 20k Secrets. The zero value is an empty list. A list is never modified
// once made: callers must not modify what All yields.
type ReaderList struct {
	shared []Reader
	own    []PlacedReader
	// n is the number of readers.
	n int
}

// PlacedReader is an entry of a Secret's own in an overlay: Reader goes
// before the shared entry At (at the end when At is the shared list's
// length), or in its place when Replaces is set.
type PlacedReader struct {
	Reader   Reader
	At       int
	Replaces bool
}

// Readers returns the list of readers, in order.
func Readers(readers ...Reader) ReaderList {
	return ReaderList{shared: readers, n: len(readers)}
}

// Overlay returns the list of shared with own placed into it. own must be
// ordered by At, entries placed before a shared entry first, and at most
// one entry may replace a shared one.
func Overlay(shared []Reader, own []PlacedReader) ReaderList {
	n := len(shared) + len(own)
	for _, o := range own {
		if o.Replaces {
			n--
		}
	}
	return ReaderList{shared: shared, own: own, n: n}
}

// Len is the number of readers.
func (l ReaderList) Len() int { return l.n }

// All yields every reader, in order, as pointers into the list.
func (l ReaderList) All() iter.Seq[*Reader] {
	return func(yield func(*Reader) bool) {
		j := 0
		for i := 0; i <= len(l.shared); i++ {
			replaced := false
			for ; j < len(l.own) && l.own[j].At == i; j++ {
				replaced = replaced || l.own[j].Replaces
				if !yield(&l.own[j].Reader) {
					return
				}
			}
			if i < len(l.shared) && !replaced && !yield(&l.shared[i]) {
				return
			}
		}
	}
}

// Slice returns the readers in a new slice.
func (l ReaderList) Slice() []Reader {
	out := make([]Reader, 0, l.n)
	for r := range l.All() {
		out = append(out, *r)
	}
	return out
}

// MarshalJSON writes the list as one array, [] when empty. It leaves
// HTML characters as they are: the encoder that called it escapes them
// if it does.
func (l ReaderList) MarshalJSON() ([]byte, error) {
	readers := l.shared
	if len(l.own) > 0 || readers == nil {
		readers = l.Slice()
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(readers); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// UnmarshalJSON reads an array.
func (l *ReaderList) UnmarshalJSON(b []byte) error {
	var readers []Reader
	if err := json.Unmarshal(b, &readers); err != nil {
		return err
	}
	*l = Readers(readers...)
	return nil
}
