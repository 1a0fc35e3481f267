package cluster

import (
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/keyhole-sec/keyhole/internal/inventory"
)

// secretMeta is a Secret without its values: what both ways of reading
// Secrets produce, and what the Watcher caches. It is a runtime.Object so
// that an informer can hold it, and it holds nothing an informer could
// leak: no data, no stringData, no managedFields (reduced to the key names
// and the time of the last data write), no last-applied annotation (which
// repeats the data).
type secretMeta struct {
	metav1.TypeMeta
	metav1.ObjectMeta
	Type corev1.SecretType
	// Keys are the sorted key names; KeysKnown is false when they could
	// not all be learned (see inventory.Secret).
	Keys      []string
	KeysKnown bool
	// DataWrittenAt is the last write to data or stringData; zero when
	// unknown. A metav1.Time, which equality.Semantic compares (see
	// changed), where it panics on a time.Time.
	DataWrittenAt metav1.Time
	// HadLastApplied records that the last-applied annotation was dropped.
	HadLastApplied bool
}

// newSecretMeta keeps what the analysis needs of a Secret's metadata. m is
// a copy; its maps are not modified.
func newSecretMeta(m metav1.ObjectMeta, typ corev1.SecretType, keys []string, keysKnown bool, dataWrittenAt time.Time) *secretMeta {
	m.ManagedFields = nil
	s := &secretMeta{ObjectMeta: m, Type: typ, Keys: keys, KeysKnown: keysKnown, DataWrittenAt: metav1.NewTime(dataWrittenAt)}
	if _, ok := m.Annotations[inventory.LastAppliedAnnotation]; ok {
		s.HadLastApplied = true
		s.Annotations = withoutKey(m.Annotations, inventory.LastAppliedAnnotation)
	}
	return s
}

// secretMetaFromAPI converts a whole Secret. Only the names of its data
// keys are read, never the values: a Helm release's payload (the whole
// chart, often a megabyte) is dropped with the rest.
func secretMetaFromAPI(in *corev1.Secret) *secretMeta {
	v := inventory.SecretFromAPI(in)
	return newSecretMeta(in.ObjectMeta, in.Type, v.Keys, true, v.DataWrittenAt)
}

// inventory returns the inventory's Secret, sharing nothing with s.
func (s *secretMeta) inventory() *inventory.Secret {
	out := inventory.SecretFromMetadata(&s.ObjectMeta, s.Type, slices.Clone(s.Keys), s.KeysKnown, s.DataWrittenAt.Time)
	out.HadLastApplied = out.HadLastApplied || s.HadLastApplied
	return out
}

// DeepCopyObject implements runtime.Object.
func (s *secretMeta) DeepCopyObject() runtime.Object {
	out := *s
	meta := &s.ObjectMeta
	meta.DeepCopyInto(&out.ObjectMeta)
	out.Keys = slices.Clone(s.Keys)
	return &out
}

// secretList is one LIST of secretMetas, as the reflector needs it:
// ListMeta for the resource version to watch from, Items for the objects.
type secretList struct {
	metav1.TypeMeta
	metav1.ListMeta
	Items []secretMeta
}

// DeepCopyObject implements runtime.Object.
func (l *secretList) DeepCopyObject() runtime.Object {
	out := &secretList{TypeMeta: l.TypeMeta, Items: make([]secretMeta, len(l.Items))}
	meta := &l.ListMeta
	meta.DeepCopyInto(&out.ListMeta)
	for i := range l.Items {
		out.Items[i] = *l.Items[i].DeepCopyObject().(*secretMeta)
	}
	return out
}

// inventory converts every item for the inventory.
func (l *secretList) inventory() []any {
	out := make([]any, len(l.Items))
	for i := range l.Items {
		out[i] = l.Items[i].inventory()
	}
	return out
}

// withoutKey returns a copy of m without key, nil when nothing remains.
func withoutKey(m map[string]string, key string) map[string]string {
	if len(m) <= 1 {
		if _, only := m[key]; only || len(m) == 0 {
			return nil
		}
	}
	out := make(map[string]string, len(m)-1)
	for k, v := range m {
		if k != key {
			out[k] = v
		}
	}
	return out
}
