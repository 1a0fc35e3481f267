package manifests

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/keyhole-sec/keyhole/internal/inventory"
)

func TestDebugRefs(t *testing.T) {
	dir := os.Getenv("DUMP")
	if dir == "" {
		t.Skip()
	}
	t.Chdir("../../../testdata/manifests")
	b := inventory.NewBuilder()
	Load(strings.Fields(dir), b, Options{})
	inv := b.Build()
	for _, r := range allRefs(inv) {
		fmt.Printf("%q: %q,\n", r.String(), inv.Location(r).String())
	}
}
