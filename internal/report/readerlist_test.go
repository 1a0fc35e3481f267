package report

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func named(names ...string) []Reader {
	out := make([]Reader, len(names))
	for i, n := range names {
		out[i] = Reader{Subject: Subject{Kind: "User", Name: n}, Verbs: []string{"get"}, Path: "direct", Via: []Via{}, Steps: []Step{}}
	}
	return out
}

func TestReaderListOverlay(t *testing.T) {
	shared := named("b", "d", "f")
	replaced := named("d")[0]
	replaced.Path = "impersonate"
	tests := []struct {
		name string
		list ReaderList
		want []string // subject, path
	}{
		{"empty", ReaderList{}, nil},
		{"flat", Readers(shared...), []string{"b direct", "d direct", "f direct"}},
		{"own before, between, in place of and after shared entries", Overlay(shared, []PlacedReader{
			{Reader: named("a")[0], At: 0},
			{Reader: named("c")[0], At: 1},
			{Reader: replaced, At: 1, Replaces: true},
			{Reader: named("g")[0], At: 3},
		}), []string{"a direct", "b direct", "c direct", "d impersonate", "f direct", "g direct"}},
		{"own only", Overlay(nil, []PlacedReader{{Reader: named("a")[0]}}), []string{"a direct"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for r := range tt.list.All() {
				got = append(got, r.Subject.Name+" "+r.Path)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("All() = %q, want %q", got, tt.want)
			}
			if tt.list.Len() != len(tt.want) {
				t.Errorf("Len() = %d, want %d", tt.list.Len(), len(tt.want))
			}
			if n := len(tt.list.Slice()); n != len(tt.want) {
				t.Errorf("Slice() has %d readers, want %d", n, len(tt.want))
			}
			// JSON is the flat list, and reads back as one.
			b, err := json.Marshal(tt.list)
			if err != nil {
				t.Fatal(err)
			}
			flat, err := json.Marshal(tt.list.Slice())
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b, flat) {
				t.Errorf("JSON %s, want the flat list's %s", b, flat)
			}
			var back ReaderList
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back.Slice(), tt.list.Slice()) {
				t.Errorf("read back %+v, want %+v", back.Slice(), tt.list.Slice())
			}
		})
	}
	// All stops when asked.
	n := 0
	for range tests[2].list.All() {
		n++
		if n == 2 {
			break
		}
	}
	if n != 2 {
		t.Errorf("All went on to %d readers after the loop stopped", n)
	}
}

// TestReaderListJSONEscaping: a list in a report is escaped as the
// encoder writing the report escapes, like any other field.
func TestReaderListJSONEscaping(t *testing.T) {
	s := Secret{Readers: Readers(Reader{Subject: Subject{Kind: "User", Name: "a<b>&c"}})}
	for _, escape := range []bool{true, false} {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(escape)
		if err := enc.Encode(s); err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(b.String(), `a<b>&c`); got == escape {
			t.Errorf("SetEscapeHTML(%v): %s", escape, b.String())
		}
		if !strings.Contains(b.String(), `"readers":[{`) {
			t.Errorf("readers not one array: %s", b.String())
		}
	}
	var b bytes.Buffer
	if err := json.NewEncoder(&b).Encode(Secret{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `"readers":[]`) {
		t.Errorf("an empty list is not []: %s", b.String())
	}
}
