package manifests

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/keyhole-sec/keyhole/internal/inventory"
)

func TestDebugDump(t *testing.T) {
	dir := os.Getenv("DUMP")
	if dir == "" {
		t.Skip()
	}
	t.Chdir("../../../testdata/manifests")
	b := inventory.NewBuilder()
	covs, probs := Load(strings.Fields(dir), b, Options{})
	for _, c := range covs {
		fmt.Printf("COV %s files=%d objects=%v ignored=%v\n", c.Target, c.Files, c.Objects, c.Ignored)
		for _, n := range c.Notes {
			fmt.Printf("  NOTE %q,\n", n)
		}
	}
	for _, p := range probs {
		fmt.Printf("PROB {%q, %q},\n", p.Location.String(), p.Message)
	}
	inv := b.Build()
	for _, r := range allRefs(inv) {
		fmt.Printf("%q: %q,\n", r.String(), inv.Location(r).String())
	}
}
