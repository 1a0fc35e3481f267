package inventory

import (
	"encoding/json"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// LastAppliedAnnotation is kubectl's client-side apply record. On a Secret it
// repeats the data, so it never enters the inventory.
const LastAppliedAnnotation = "kubectl.kubernetes.io/last-applied-configuration"

// Secret is a Secret without its values: what the analyzers need to name it,
// classify it and reason about who reads it.
type Secret struct {
	Namespace string
	Name      string
	Type      corev1.SecretType
	// Keys are the sorted names of the data and stringData entries.
	Keys []string
	// KeysKnown is false when the source could not learn the key names
	// (for example a live Secret whose managedFields were stripped).
	KeysKnown       bool
	Labels          map[string]string
	Annotations     map[string]string
	OwnerReferences []metav1.OwnerReference
	// HadLastApplied records that the Secret carried the last-applied
	// annotation (dropped here because it repeats the data).
	HadLastApplied bool
	CreatedAt      time.Time
	// DataWrittenAt is the newest managedFields time of a write to data or
	// stringData; zero when unknown.
	DataWrittenAt time.Time
}

// Ref returns the Secret's reference.
func (s *Secret) Ref() Ref { return Ref{Kind: "Secret", Namespace: s.Namespace, Name: s.Name} }

// SecretFromAPI converts an API Secret into the value-free model. The
// caller's object is not modified; nothing of data or stringData is kept but
// the key names.
func SecretFromAPI(in *corev1.Secret) *Secret {
	keys := make([]string, 0, len(in.Data)+len(in.StringData))
	seen := make(map[string]bool, len(in.Data)+len(in.StringData))
	for k := range in.Data {
		seen[k] = true
		keys = append(keys, k)
	}
	for k := range in.StringData {
		if !seen[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return SecretFromMetadata(&in.ObjectMeta, in.Type, keys, true, DataWriteTime(in.ManagedFields))
}

// SecretFromMetadata builds the value-free Secret from a Secret's metadata,
// its type, what is known of its key names and when its data was last
// written. It is the one place that decides what of a Secret's metadata is
// kept: never the last-applied annotation, which repeats the data.
func SecretFromMetadata(m *metav1.ObjectMeta, typ corev1.SecretType, keys []string, keysKnown bool, dataWrittenAt time.Time) *Secret {
	if keys == nil {
		keys = []string{}
	}
	s := &Secret{
		Namespace:       m.Namespace,
		Name:            m.Name,
		Type:            typ,
		Keys:            keys,
		KeysKnown:       keysKnown,
		Labels:          copyMap(m.Labels),
		OwnerReferences: append([]metav1.OwnerReference(nil), m.OwnerReferences...),
		CreatedAt:       m.CreationTimestamp.Time,
		DataWrittenAt:   dataWrittenAt,
	}
	if s.Type == "" {
		s.Type = corev1.SecretTypeOpaque
	}
	if len(m.Annotations) > 0 {
		s.Annotations = make(map[string]string, len(m.Annotations))
		for k, v := range m.Annotations {
			if k == LastAppliedAnnotation {
				s.HadLastApplied = true
				continue
			}
			s.Annotations[k] = v
		}
	}
	return s
}

// ManagedData is what an object's managedFields say of its data: the key
// names recorded under f:data and f:stringData, and when they were last
// written. managedFields record field paths, never values.
type ManagedData struct {
	// Keys are the recorded key names, sorted and deduplicated.
	Keys []string
	// Recorded is false when no entry records data fields at all.
	Recorded bool
	// WrittenAt is the newest time a manager wrote data or stringData;
	// zero when unknown.
	WrittenAt time.Time
}

// ManagedDataOf reads managedFields once for both the key names and the
// last data write.
func ManagedDataOf(fields []metav1.ManagedFieldsEntry) ManagedData {
	var md ManagedData
	seen := map[string]bool{}
	for _, f := range fields {
		if f.FieldsV1 == nil {
			continue
		}
		var set map[string]any
		if err := json.Unmarshal(f.FieldsV1.GetRawBytes(), &set); err != nil {
			continue
		}
		writes := false
		for _, top := range []string{"f:data", "f:stringData"} {
			sub, present := set[top]
			if !present {
				continue
			}
			writes = true
			m, _ := sub.(map[string]any)
			for k := range m {
				if len(k) > 2 && k[:2] == "f:" {
					seen[k[2:]] = true
				}
			}
		}
		md.Recorded = md.Recorded || writes
		if writes && f.Time != nil && f.Time.After(md.WrittenAt) {
			md.WrittenAt = f.Time.Time
		}
	}
	for k := range seen {
		md.Keys = append(md.Keys, k)
	}
	sort.Strings(md.Keys)
	return md
}

// DataWriteTime returns the newest time at which a field manager wrote the
// data or stringData of an object, from its managedFields.
func DataWriteTime(fields []metav1.ManagedFieldsEntry) time.Time {
	return ManagedDataOf(fields).WrittenAt
}

// DataKeysFromManagedFields returns the key names recorded under f:data and
// f:stringData in managedFields, sorted and deduplicated. ok is false when no
// entry records data fields at all.
func DataKeysFromManagedFields(fields []metav1.ManagedFieldsEntry) (keys []string, ok bool) {
	md := ManagedDataOf(fields)
	return md.Keys, md.Recorded
}

func copyMap(in map[string]string) map[string]string {
	if len(in) == 0 {
		return nil
	}
	out := make(map[string]string, len(in))
	for k, v := range in {
		out[k] = v
	}
	return out
}
