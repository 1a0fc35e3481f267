package gitscan

import (
	"bytes"
	"testing"
)

func TestNewRandomKey(t *testing.T) {
	a, err := NewRandomKey()
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewRandomKey()
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != MinKeyLen || len(b) != MinKeyLen {
		t.Fatalf("key lengths %d and %d, want %d", len(a), len(b), MinKeyLen)
	}
	if bytes.Equal(a, b) {
		t.Error("two calls drew the same key")
	}
	if bytes.Equal(a, make([]byte, MinKeyLen)) {
		t.Error("the key is all zero bytes")
	}
	// The key is what NewScanner accepts.
	NewScanner(a)
}
