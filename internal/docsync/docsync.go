// Package docsync keeps a generated block of a documentation file equal to
// what the code generates, for tests: the block lies between two marker
// lines, and `go test -update` rewrites it after an intended change.
package docsync

import (
	"os"
	"strings"
	"testing"
)

// Check fails t unless the block of the file at path that starts with the
// begin marker and ends with the end marker's line equals want (markers
// included). With update it rewrites the block instead. how says how to
// update, for the failure message.
func Check(t testing.TB, path, begin, end, want string, update bool, how string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	b, e := strings.Index(doc, begin), strings.Index(doc, end)
	if b < 0 || e < b {
		t.Fatalf("%s lacks the markers %q and %q around the generated block", path, begin, end)
	}
	stop := e + len(end)
	if stop < len(doc) && doc[stop] == '\n' {
		stop++
	}
	if doc[b:stop] == want {
		return
	}
	if update {
		// The file exists, so WriteFile keeps its mode.
		if err := os.WriteFile(path, []byte(doc[:b]+want+doc[stop:]), 0o600); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("%s is not what the code generates (%s); it should read:\n%s", path, how, want)
}
