package git

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

const (
	oidA = "1111111111111111111111111111111111111111"
	oidB = "2222222222222222222222222222222222222222"
	oidC = "3333333333333333333333333333333333333333"
)

func parseAll(t *testing.T, stream string) ([]commit, []change, error) {
	t.Helper()
	var cs []commit
	var chs []change
	err := newLogParser(strings.NewReader(stream)).parse(context.Background(),
		func(c commit) error { cs = append(cs, c); return nil },
		func(c change) error { chs = append(chs, c); return nil })
	return cs, chs, err
}

func TestLogParser(t *testing.T) {
	long := strings.Repeat("d/", 40000) + "x.yaml" // longer than the reader's buffer
	stream := "commit " + oidA + " 100\x00" +
		"\n:000000 100644 " + zeroOID + " " + oidB + " A\x00new line\n.yaml\x00" +
		":100644 000000 " + oidB + " " + zeroOID + " D\x00gone.yaml\x00" +
		":100644 120000 " + oidB + " " + oidC + " T\x00now-a-link.yaml\x00" +
		":000000 160000 " + zeroOID + " " + oidC + " A\x00sub.yaml\x00" +
		"commit " + oidB + " 90\x00" + // an empty commit
		"commit " + oidC + " 80\x00" +
		"\n:100644 100755 " + oidA + " " + oidB + " R100\x00from.yaml\x00to.yaml\x00" +
		":000000 100644 " + zeroOID + " " + oidA + " A\x00" + long + "\x00"
	cs, chs, err := parseAll(t, stream)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 3 || cs[0].oid != oidA || cs[0].time != 100 || cs[2].time != 80 {
		t.Errorf("commits %+v", cs)
	}
	want := []change{
		{commit: 0, path: "new line\n.yaml", new: oidB},
		{commit: 0, path: "gone.yaml", old: oidB},
		{commit: 0, path: "now-a-link.yaml", old: oidB},
		{commit: 0, path: "sub.yaml"},
		{commit: 2, path: "to.yaml", old: oidA, new: oidB},
		{commit: 2, path: long, new: oidA},
	}
	if len(chs) != len(want) {
		t.Fatalf("changes %+v", chs)
	}
	for i := range want {
		if chs[i] != want[i] {
			got, w := chs[i], want[i]
			got.path, w.path = truncate([]byte(got.path), 60)+fmt.Sprint(len(got.path)), truncate([]byte(w.path), 60)+fmt.Sprint(len(w.path))
			t.Errorf("change %d: got %+v, want %+v", i, got, w)
		}
	}
}

func TestLogParserRejectsGarbage(t *testing.T) {
	for _, s := range []string{
		"garbage\x00",
		":100644 100644 " + oidA + " " + oidB + " M\x00x.yaml\x00",                        // no commit yet
		"commit " + oidA + "\x00",                                                         // no time
		"commit " + oidA + " 1\x00:100644 M\x00x\x00",                                     // short raw line
		"commit " + oidA + " 1\x00:000000 100644 " + zeroOID + " " + oidB + " A\x00",      // no path
		"commit " + oidA + " 1\x00:000000 100644 " + zeroOID + " " + oidB + " A\x00trunc", // no NUL
	} {
		if _, _, err := parseAll(t, s); err == nil {
			t.Errorf("%q: no error", s)
		}
	}
}

func FuzzLogParser(f *testing.F) {
	f.Add("commit " + oidA + " 1\x00\n:000000 100644 " + zeroOID + " " + oidB + " A\x00x.yaml\x00")
	f.Add("commit " + oidA + " 1\x00:1 1 a b R\x00x\x00y\x00")
	f.Fuzz(func(t *testing.T, s string) {
		_, chs, err := parseAll(t, s)
		if err != nil {
			return
		}
		for _, c := range chs {
			if c.commit < 0 {
				t.Fatalf("change before a commit: %+v", c)
			}
		}
	})
}
