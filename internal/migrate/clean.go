package migrate

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	corev1 "k8s.io/api/core/v1"
)

// lastApplied are the annotations in which apply tools keep a copy of the
// whole object as last applied: for a Secret, its values in clear.
var lastApplied = []string{
	"kubectl.kubernetes.io/last-applied-configuration",
	"kubecfg.ksonnet.io/last-applied-configuration",
}

// Clean strips, in place, the metadata of s that must not travel into a
// manifest written for another object or another cluster:
//
//   - what the API server owns and sets on every write: uid,
//     resourceVersion, generation, creationTimestamp, selfLink,
//     deletionTimestamp, deletionGracePeriodSeconds and managedFields;
//   - every ownerReference: it names its owner by UID, which no other
//     object shares, and the garbage collector deletes a Secret whose
//     owner UID does not exist;
//   - the last-applied-configuration annotations of kubectl and kubecfg,
//     which hold the object as last applied, values included.
//
// It also merges stringData into data the way the API server does (a key
// in both takes the stringData value), so that Data is the whole content.
func Clean(s *corev1.Secret) {
	m := &s.ObjectMeta
	m.UID = ""
	m.ResourceVersion = ""
	m.Generation = 0
	m.CreationTimestamp = metav1.Time{}
	// No longer set by API servers, but manifests exported from old
	// clusters still carry it.
	m.SelfLink = "" //nolint:staticcheck // clearing the deprecated field is the point
	m.DeletionTimestamp = nil
	m.DeletionGracePeriodSeconds = nil
	m.ManagedFields = nil
	m.OwnerReferences = nil
	for _, a := range lastApplied {
		delete(m.Annotations, a)
	}
	if len(m.Annotations) == 0 {
		m.Annotations = nil
	}
	if len(s.StringData) > 0 {
		if s.Data == nil {
			s.Data = make(map[string][]byte, len(s.StringData))
		}
		for k, v := range s.StringData {
			s.Data[k] = []byte(v)
		}
	}
	s.StringData = nil
}
