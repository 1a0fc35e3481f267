package vault

import (
	"bytes"
	"testing"
)

func TestHasher(t *testing.T) {
	h, err := newHasher()
	if err != nil {
		t.Fatal(err)
	}
	base := map[string]any{"a": "bc", "d": canary}
	same := map[string]any{"d": canary, "a": "bc"}
	if !bytes.Equal(h.sum(base), h.sum(same)) {
		t.Error("the same data in another order hashes differently")
	}
	for name, other := range map[string]map[string]any{
		"a value changed":              {"a": "bc", "d": canary + "x"},
		"a key renamed":                {"a": "bc", "e": canary},
		"a key added":                  {"a": "bc", "d": canary, "e": ""},
		"a key removed":                {"a": "bc"},
		"the key/value boundary moved": {"ab": "c", "d": canary},
		"a string became a number":     {"a": "bc", "d": 1},
		"empty":                        {},
	} {
		if bytes.Equal(h.sum(base), h.sum(other)) {
			t.Errorf("%s: same hash", name)
		}
	}
	if bytes.Equal(h.sum(map[string]any{"n": "1"}), h.sum(map[string]any{"n": 1})) {
		t.Error(`"1" and 1 hash the same`)
	}
	// Keyed: another run's key gives another hash of the same data.
	h2, err := newHasher()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(h.sum(base), h2.sum(base)) {
		t.Error("two runs' keys give the same hash")
	}
}
