package analysis

import (
	"reflect"
	"testing"

	"github.com/keyhole-sec/keyhole/internal/exposure"
	"github.com/keyhole-sec/keyhole/internal/rbac"
	"github.com/keyhole-sec/keyhole/internal/report"
)

// TestConvertedOverlaysAreTheFlatLists: a Secret's converted reader list
// keeps the shared part shared and places its own entries into it; read
// in order, it must be exactly the list converted entry by entry, on
// worlds where many Secrets have entries of their own, some replacing a
// shared one.
func TestConvertedOverlaysAreTheFlatLists(t *testing.T) {
	overlays, replacing := 0, 0
	for seed := range int64(3) {
		in := accessInput(t, accessWorld(seed+1), rbac.AggregationComputed)
		opts := accessOptions(t)
		acc := NewAccess(in, opts)
		conv := newReaderConverter(opts.Exposure)
		flat := newReaderConverter(opts.Exposure)
		for _, se := range AssessSecrets(in.Inventory, acc.result, opts.Exposure) {
			var want []report.Reader
			for r := range se.Readers.Refs() {
				want = append(want, flat.reader(r))
			}
			got := conv.readers(se.Readers)
			if !reflect.DeepEqual(got.Slice(), want) || got.Len() != len(want) {
				t.Fatalf("seed %d, Secret %s/%s: converted list differs from the flat one (%d readers, want %d)",
					seed+1, se.Secret.Namespace, se.Secret.Name, got.Len(), len(want))
			}
			if len(se.Readers.Own) > 0 {
				overlays++
				if got.Len() < len(se.Readers.Shared)+len(se.Readers.Own) {
					replacing++
				}
			}
		}
	}
	if overlays == 0 || replacing == 0 {
		t.Fatalf("the worlds have %d Secrets with entries of their own, %d replacing shared ones: the test proves nothing", overlays, replacing)
	}
	t.Logf("%d Secrets with entries of their own, %d replacing shared ones", overlays, replacing)
}

// TestAssessSecretsRaisesPanicsInTheCaller: the reader lists are
// assembled on a goroutine of their own, and a panic there must reach
// the caller, whose recover (the daemon's) keeps the process up; a panic
// left on that goroutine would take the whole process down.
func TestAssessSecretsRaisesPanicsInTheCaller(t *testing.T) {
	in := accessInput(t, accessWorld(1), rbac.AggregationComputed)
	defer func() {
		if recover() == nil {
			t.Error("AssessSecrets with no paths result did not panic")
		}
	}()
	AssessSecrets(in.Inventory, nil, accessOptions(t).Exposure)
}

// TestAssessSecretsMatchesOneByOne: assembled on several goroutines, each
// Secret's readers and assessment are what one Result gives it alone.
func TestAssessSecretsMatchesOneByOne(t *testing.T) {
	for seed := range int64(3) {
		in := accessInput(t, accessWorld(seed+1), rbac.AggregationComputed)
		opts := accessOptions(t)
		got := AssessSecrets(in.Inventory, NewAccess(in, opts).result, opts.Exposure)
		one := NewAccess(in, opts).result
		if len(got) != len(in.Inventory.Secrets) {
			t.Fatalf("seed %d: %d Secrets assessed, want %d", seed+1, len(got), len(in.Inventory.Secrets))
		}
		for _, se := range got {
			want := one.Readers(se.Secret)
			if !reflect.DeepEqual(se.Readers.Slice(), want.Slice()) {
				t.Fatalf("seed %d, Secret %s/%s: readers differ from one Result's", seed+1, se.Secret.Namespace, se.Secret.Name)
			}
			if a := exposure.Assess(se.Secret, want, opts.Exposure); !reflect.DeepEqual(*se.Assessment, a) {
				t.Fatalf("seed %d, Secret %s/%s: assessment %+v, want %+v", seed+1, se.Secret.Namespace, se.Secret.Name, *se.Assessment, a)
			}
		}
	}
}
