package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	"github.com/keyhole-sec/keyhole/internal/inventory"
)

// The columns the API server prints for Secrets, Type and Data moved to
// prove they are found by name.
const secretColumns = `[{"name":"Name","type":"string"},{"name":"Data","type":"string"},{"name":"Age","type":"string"},{"name":"Type","type":"string"}]`

// tableEvent writes one watch event of a Table of Secrets with one row.
// columns is "" for the events after the first, which carry none.
func tableEvent(t *testing.T, typ, columns, name, secretType string, keys int, rv string, annotations map[string]string) string {
	t.Helper()
	m := metav1.PartialObjectMetadata{
		TypeMeta: metav1.TypeMeta{APIVersion: "meta.k8s.io/v1", Kind: "PartialObjectMetadata"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, ResourceVersion: rv, Annotations: annotations,
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationUpdate,
				Time: ptr.To(metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))), FieldsType: "FieldsV1",
				FieldsV1: metav1.NewFieldsV1(`{"f:data":{".":{},"f:a":{},"f:b":{}}}`)}},
		},
	}
	obj, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if columns == "" {
		columns = "null"
	}
	return fmt.Sprintf(`{"type":%q,"object":{"kind":"Table","apiVersion":"meta.k8s.io/v1","metadata":{"resourceVersion":%q},"columnDefinitions":%s,"rows":[{"cells":[%q,%d,"1h",%q],"object":%s}]}}`+"\n",
		typ, rv, columns, name, keys, secretType, obj)
}

// watchAll reads a Table watch of stream to its end.
func watchAll(t *testing.T, stream string, cols *tableColumns) []watch.Event {
	t.Helper()
	w := newTableWatch(klog.Background(), io.NopCloser(strings.NewReader(stream)), cols)
	defer w.Stop()
	var out []watch.Event
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				return out
			}
			out = append(out, ev)
		case <-timeout:
			t.Fatalf("the watch did not end; %d events so far", len(out))
		}
	}
}

func TestTableWatch(t *testing.T) {
	lastApplied := map[string]string{inventory.LastAppliedAnnotation: `{"data":{"a":"S0VZSE9MRS1DQU5BUlk="}}`, "team": "x"}
	stream := tableEvent(t, "ADDED", secretColumns, "one", "Opaque", 2, "10", lastApplied) +
		// The API server sends column definitions with the first event only.
		tableEvent(t, "MODIFIED", "", "one", "kubernetes.io/tls", 3, "11", nil) +
		`{"type":"BOOKMARK","object":{"kind":"Table","apiVersion":"meta.k8s.io/v1","metadata":{"resourceVersion":"12"},"columnDefinitions":null,` +
		`"rows":[{"cells":["","",0,"<unknown>"],"object":{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","metadata":{"resourceVersion":"12"}}}]}}` + "\n" +
		tableEvent(t, "DELETED", "", "one", "kubernetes.io/tls", 3, "13", nil) +
		`{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 1 (13)","reason":"Expired","code":410}}` + "\n"
	evs := watchAll(t, stream, &tableColumns{})

	var types []watch.EventType
	for _, ev := range evs {
		types = append(types, ev.Type)
	}
	if want := []watch.EventType{watch.Added, watch.Modified, watch.Bookmark, watch.Deleted, watch.Error}; !reflect.DeepEqual(types, want) {
		t.Fatalf("events %v, want %v", types, want)
	}
	added := evs[0].Object.(*secretMeta)
	if added.Name != "one" || added.Namespace != "ns" || added.ResourceVersion != "10" || added.Type != corev1.SecretTypeOpaque ||
		!reflect.DeepEqual(added.Keys, []string{"a", "b"}) || !added.KeysKnown || !added.HadLastApplied ||
		added.DataWrittenAt.IsZero() || len(added.ManagedFields) != 0 || !reflect.DeepEqual(added.Annotations, map[string]string{"team": "x"}) {
		t.Errorf("ADDED: %+v", added)
	}
	// Three keys printed, two recorded: the key list is not all known.
	modified := evs[1].Object.(*secretMeta)
	if modified.Type != corev1.SecretTypeTLS || modified.KeysKnown || modified.ResourceVersion != "11" {
		t.Errorf("MODIFIED, read with the first event's columns: %+v", modified)
	}
	if b := evs[2].Object.(*secretMeta); b.ResourceVersion != "12" || b.Name != "" {
		t.Errorf("BOOKMARK: %+v", b)
	}
	if d := evs[3].Object.(*secretMeta); d.Name != "one" || d.ResourceVersion != "13" {
		t.Errorf("DELETED: %+v", d)
	}
	st, ok := evs[4].Object.(*metav1.Status)
	if !ok || !apierrors.IsResourceExpired(apierrors.FromObject(st)) {
		t.Errorf("ERROR: %#v, want the 410 Status as it is", evs[4].Object)
	}
	raw, _ := json.Marshal(evs)
	if strings.Contains(string(raw), "S0VZSE9MRS1DQU5BUlk") {
		t.Error("the last-applied value reached a watch event")
	}
}

// A watch is read with the columns an earlier list learned, should its
// first event not define them; without them, it fails.
func TestTableWatchColumnsFromList(t *testing.T) {
	list := fmt.Sprintf(`{"kind":"Table","apiVersion":"meta.k8s.io/v1","metadata":{"resourceVersion":"9"},"columnDefinitions":%s,"rows":[]}`, secretColumns)
	cols := &tableColumns{}
	if l, err := decodeSecretTable([]byte(list), cols); err != nil || l.ResourceVersion != "9" {
		t.Fatalf("list: %v, %+v", err, l)
	}
	evs := watchAll(t, tableEvent(t, "ADDED", "", "two", "Opaque", 2, "10", nil), cols)
	if len(evs) != 1 || evs[0].Type != watch.Added || evs[0].Object.(*secretMeta).Type != corev1.SecretTypeOpaque {
		t.Errorf("events %+v", evs)
	}
	evs = watchAll(t, tableEvent(t, "ADDED", "", "two", "Opaque", 2, "10", nil), &tableColumns{})
	if len(evs) != 1 || evs[0].Type != watch.Error || !strings.Contains(evs[0].Object.(*metav1.Status).Message, string(errNoTypeColumn)) {
		t.Errorf("without any column definitions: %+v", evs)
	}
}

// Every malformed event becomes one ERROR event, a 500 that the reflector
// answers by watching again, worded by this package; then the watch ends.
func TestTableWatchMalformed(t *testing.T) {
	good := tableEvent(t, "ADDED", secretColumns, "one", "Opaque", 2, "10", nil)
	twoRows := strings.Replace(good, `"rows":[{`, `"rows":[{"cells":[],"object":{"metadata":{}}},{`, 1)
	for _, tc := range []struct {
		name, stream string
		want         ownError
	}{
		{"not JSON", `{"type":"ADDED","object":{"kind":"Table"` + "\x00}\n", errUnreadableEvent},
		{"object not a Table", `{"type":"ADDED","object":42}` + "\n", errUnreadableEvent},
		{"two rows", twoRows, errRowCount},
		{"row without metadata", strings.Replace(good, `"object":{"kind":"PartialObjectMetadata"`, `"other":{"kind":"PartialObjectMetadata"`, 1), errNoRowObject},
		{"no Type column", strings.Replace(good, `{"name":"Type","type":"string"}`, `{"name":"Kind","type":"string"}`, 1), errNoTypeColumn},
		{"unknown type", `{"type":"SOMETHING","object":{}}` + "\n", errUnknownEvent},
		{"ERROR without a Status", `{"type":"ERROR","object":{"kind":"Table"}}` + "\n", errUnreadableError},
		{"ERROR not an object", `{"type":"ERROR","object":"boom"}` + "\n", errUnreadableError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			evs := watchAll(t, tc.stream+good, &tableColumns{})
			if len(evs) != 1 || evs[0].Type != watch.Error {
				t.Fatalf("events %+v, want one ERROR and the end of the watch", evs)
			}
			st := evs[0].Object.(*metav1.Status)
			if st.Code != http.StatusInternalServerError || !strings.HasSuffix(st.Message, string(tc.want)) {
				t.Errorf("status %d %q, want 500 ending in %q", st.Code, st.Message, tc.want)
			}
		})
	}
	// A stream cut short ends the watch without an event: the reflector
	// watches again.
	if evs := watchAll(t, good[:len(good)/2], &tableColumns{}); len(evs) != 0 {
		t.Errorf("truncated stream: %+v", evs)
	}
}

func TestMapEventsStopDoesNotLeak(t *testing.T) {
	src := watch.NewFake()
	m := mapEvents(src, func(ev watch.Event) watch.Event { return ev })
	sent := make(chan struct{})
	go func() {
		src.Add(&secretMeta{}) // taken by mapWatch, which nobody reads
		close(sent)
	}()
	<-sent
	m.Stop()
	select {
	case _, ok := <-m.ResultChan():
		for ok {
			_, ok = <-m.ResultChan()
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the result channel was not closed after Stop")
	}
}

func TestTransformsKeepWhatTheAnalysisReads(t *testing.T) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u", Labels: map[string]string{"app": "x"},
			Annotations:     map[string]string{inventory.LastAppliedAnnotation: "{}", "keyhole.io/ignore": "KH202"},
			OwnerReferences: []metav1.OwnerReference{{Kind: "ReplicaSet", Name: "rs", UID: "r"}},
			ManagedFields:   []metav1.ManagedFieldsEntry{{Manager: "m"}}},
		Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: "side", Image: "i", RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways),
				VolumeMounts: []corev1.VolumeMount{{Name: "v", MountPath: "/v"}}}},
			Containers: []corev1.Container{{Name: "c", Image: "i", Command: []string{"run"},
				Env:             []corev1.EnvVar{{Name: "PASSWORD", Value: "literal"}},
				EnvFrom:         []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "s"}}}},
				SecurityContext: &corev1.SecurityContext{Privileged: ptr.To(true)}}},
			EphemeralContainers: []corev1.EphemeralContainer{{TargetContainerName: "c",
				EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debug", Image: "i", Env: []corev1.EnvVar{{Name: "E", Value: "v"}}}}},
			Volumes: []corev1.Volume{
				{Name: "v", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "s", Items: []corev1.KeyToPath{{Key: "k", Path: "p"}}}}},
				{Name: "kube-api-access", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{DefaultMode: ptr.To[int32](0o644), Sources: []corev1.VolumeProjection{
					{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: ptr.To[int64](3607)}},
					{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"}, Items: []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}},
					{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{Path: "namespace", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}}}},
					{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "proj"}}},
				}}}},
				{Name: "conf", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "c"}}}},
				{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
				{Name: "csi", VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{Driver: "d", NodePublishSecretRef: &corev1.LocalObjectReference{Name: "csi-creds"}}}},
				{Name: "claim", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "pvc"}}},
			},
			ImagePullSecrets:             []corev1.LocalObjectReference{{Name: "pull"}},
			ServiceAccountName:           "sa",
			AutomountServiceAccountToken: ptr.To(false),
			NodeName:                     "node",
			Hostname:                     "h",
		},
		Status: corev1.PodStatus{Phase: corev1.PodSucceeded, PodIP: "10.0.0.1", Conditions: []corev1.PodCondition{{Type: corev1.PodReady}}},
	}
	want := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u", Labels: map[string]string{"app": "x"},
			Annotations:     map[string]string{"keyhole.io/ignore": "KH202"},
			OwnerReferences: []metav1.OwnerReference{{Kind: "ReplicaSet", Name: "rs", UID: "r"}}},
		Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: "side", RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways),
				VolumeMounts: []corev1.VolumeMount{{Name: "v"}}}},
			Containers: []corev1.Container{{Name: "c", Env: []corev1.EnvVar{{Name: "PASSWORD", Value: "literal"}},
				EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "s"}}}}}},
			EphemeralContainers: []corev1.EphemeralContainer{{
				EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debug", Env: []corev1.EnvVar{{Name: "E", Value: "v"}}}}},
			Volumes: []corev1.Volume{
				{Name: "v", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "s", Items: []corev1.KeyToPath{{Key: "k", Path: "p"}}}}},
				{Name: "kube-api-access", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
					{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: ptr.To[int64](3607)}},
					{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "proj"}}},
				}}}},
				{Name: "conf"},
				{Name: "scratch"},
				{Name: "csi", VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{Driver: "d", NodePublishSecretRef: &corev1.LocalObjectReference{Name: "csi-creds"}}}},
				{Name: "claim", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "pvc"}}},
			},
			ImagePullSecrets:             []corev1.LocalObjectReference{{Name: "pull"}},
			ServiceAccountName:           "sa",
			AutomountServiceAccountToken: ptr.To(false),
			NodeName:                     "node",
		},
		Status: corev1.PodStatus{Phase: corev1.PodSucceeded},
	}
	transform := trimmer(trimPod)
	once, err := transform(pod.DeepCopy())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(once, want) {
		t.Errorf("trimmed pod\n got %+v\nwant %+v", once, want)
	}
	twice, err := transform(once.(*corev1.Pod).DeepCopy())
	if err != nil || !reflect.DeepEqual(twice, once) {
		t.Errorf("trimming is not idempotent: %+v", twice)
	}
	if _, err := transform(&corev1.Node{}); err == nil {
		t.Error("the pod transform cached a Node")
	}
}

func TestTransformSecret(t *testing.T) {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "ns",
		Annotations: map[string]string{inventory.LastAppliedAnnotation: canary}},
		Type: "helm.sh/release.v1", Data: map[string][]byte{"release": []byte(canary)}, StringData: map[string]string{"extra": canary}}
	got, err := transformSecret(s)
	if err != nil {
		t.Fatal(err)
	}
	m := got.(*secretMeta)
	if !reflect.DeepEqual(m.Keys, []string{"extra", "release"}) || !m.KeysKnown || !m.HadLastApplied || m.Type != "helm.sh/release.v1" {
		t.Errorf("converted %+v", m)
	}
	if raw, _ := json.Marshal(m); strings.Contains(string(raw), "CANARY") {
		t.Error("a value survived the Secret transform")
	}
	if s.Annotations[inventory.LastAppliedAnnotation] == "" {
		t.Error("the transform changed its input's annotations, which a typed object may share")
	}
	if again, err := transformSecret(m); err != nil || again != m {
		t.Errorf("not idempotent: %v %v", again, err)
	}
	if _, err := transformSecret(&corev1.ConfigMap{}); err == nil {
		t.Error("the Secret transform cached a ConfigMap")
	}
}

func TestChanged(t *testing.T) {
	written := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	secretWritten := func(rv string, at time.Time) *secretMeta {
		return newSecretMeta(metav1.ObjectMeta{Name: "s", ResourceVersion: rv}, corev1.SecretTypeOpaque, []string{"k"}, true, at)
	}
	pod := func(rv string, phase corev1.PodPhase, conditions int) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", ResourceVersion: rv}, Status: corev1.PodStatus{Phase: phase}}
		for range conditions {
			p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: corev1.PodReady})
		}
		v, err := trimmer(trimPod)(p)
		if err != nil {
			t.Fatal(err)
		}
		return v.(*corev1.Pod)
	}
	for _, tc := range []struct {
		name     string
		old, cur any
		want     bool
	}{
		{"only dropped fields", pod("1", corev1.PodRunning, 0), pod("2", corev1.PodRunning, 3), false},
		{"phase", pod("1", corev1.PodRunning, 0), pod("2", corev1.PodSucceeded, 0), true},
		{"resync", pod("1", corev1.PodRunning, 0), pod("1", corev1.PodRunning, 0), true},
		{"secret keys", &secretMeta{ObjectMeta: metav1.ObjectMeta{ResourceVersion: "1"}, Keys: []string{"a"}},
			&secretMeta{ObjectMeta: metav1.ObjectMeta{ResourceVersion: "2"}, Keys: []string{"a", "b"}}, true},
		{"secret label", &secretMeta{ObjectMeta: metav1.ObjectMeta{ResourceVersion: "1"}},
			&secretMeta{ObjectMeta: metav1.ObjectMeta{ResourceVersion: "2", Labels: map[string]string{"a": "b"}}}, true},
		// Compared down to the data write time, which must not panic.
		{"secret data write", secretWritten("1", written), secretWritten("2", written.Add(time.Second)), true},
		{"secret unchanged", secretWritten("1", written), secretWritten("2", written), false},
	} {
		if got := changed(tc.old, tc.cur); got != tc.want {
			t.Errorf("%s: changed = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// upCalls records OnSourceUp.
type upCalls struct {
	mu    sync.Mutex
	calls []string
}

func (u *upCalls) record(resource string, up bool, err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	s := fmt.Sprintf("%s up=%v", resource, up)
	if err != nil {
		s += ": " + err.Error()
	}
	u.calls = append(u.calls, s)
}

func (u *upCalls) take() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := u.calls
	u.calls = nil
	return out
}

func TestFeedHealth(t *testing.T) {
	var pods *resource
	for i := range resources {
		if resources[i].name == "pods" {
			pods = &resources[i]
		}
	}
	calls := &upCalls{}
	f := &feed{res: pods, onUp: calls.record, settled: make(chan struct{})}
	ctx := context.Background()
	forbidden := apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "", errors.New(`User "u" cannot watch resource "pods" in API group "" at the cluster scope`))
	gone := apierrors.NewResourceExpired("too old resource version")

	steps := []struct {
		verb string
		err  error
		want []string
	}{
		{"list", nil, []string{"pods up=true"}},
		{"watch", nil, nil},
		{"watch", gone, nil}, // the reflector re-lists; not a failure
		{"watch", forbidden, []string{`pods up=false: watch pods: forbidden: User "u" cannot watch resource "pods" in API group "" at the cluster scope`}},
		{"list", nil, nil}, // listing says nothing of the watch
		{"watch", forbidden, nil},
		{"watch", nil, []string{"pods up=true"}},
		{"list", errors.New("dial tcp: connection refused"), []string{"pods up=false: list pods: the server's answer could not be read"}},
		{"list", nil, []string{"pods up=true"}},
	}
	for i, s := range steps {
		f.record(ctx, s.verb, s.err)
		if got := calls.take(); !reflect.DeepEqual(got, s.want) {
			t.Errorf("step %d (%s, %v): calls %q, want %q", i, s.verb, s.err, got, s.want)
		}
	}
	select {
	case <-f.settled:
	default:
		t.Error("a failed list did not settle the resource")
	}

	// The reflector hands its handler the errors of requests, already
	// recorded, and its own.
	f.reflectorFailed(ctx, nil, fmt.Errorf("failed to list pods: %w", steps[len(steps)-2].err))
	if got := calls.take(); got != nil {
		t.Errorf("a request's failure counted twice: %q", got)
	}
	f.reflectorFailed(ctx, nil, errors.New("unable to sync list result: the transform failed"))
	if got, want := calls.take(), []string{"pods up=false: list pods: the server's answer could not be read"}; !reflect.DeepEqual(got, want) {
		t.Errorf("the reflector's own failure: calls %q, want %q", got, want)
	}

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	f.record(canceled, "list", nil)
	if got := calls.take(); got != nil || f.failure() == "" {
		t.Errorf("a request ended by shutdown counted: %q %q", got, f.failure())
	}
}

func TestListReasonClientDecoding(t *testing.T) {
	rep := apierrors.NewClientErrorReporter(http.StatusInternalServerError, "GET", "ClientWatchDecoding")
	err := apierrors.FromObject(rep.AsObject(errors.New("unable to decode: " + canary)))
	if got := listReason(err, true); strings.Contains(got, "CANARY") || got != "the server's answer could not be read" {
		t.Errorf("value-bearing: %q", got)
	}
	if got := listReason(err, false); !strings.Contains(got, "unable to decode") {
		t.Errorf("other resources keep the text: %q", got)
	}
}

// Fill hands the inventory copies, so that nothing downstream can change
// the cache.
func TestCachedObjectsAreCopied(t *testing.T) {
	s := &secretMeta{ObjectMeta: metav1.ObjectMeta{Name: "s", Labels: map[string]string{"a": "b"}}, Keys: []string{"k"}}
	c := s.DeepCopyObject().(*secretMeta)
	c.Labels["a"], c.Keys[0] = "changed", "changed"
	l := (&secretList{Items: []secretMeta{*s}}).DeepCopyObject().(*secretList)
	l.Items[0].Labels["a"] = "changed"
	inv := copyCached(s).(*inventory.Secret)
	inv.Labels["a"], inv.Keys[0] = "changed", "changed"
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"a": "b"}}}
	copyCached(pod).(*corev1.Pod).Labels["a"] = "changed"
	if s.Labels["a"] != "b" || s.Keys[0] != "k" || pod.Labels["a"] != "b" {
		t.Errorf("a copy shares its maps or slices with the cached object: %+v %+v", s, pod)
	}
}

// After Stop, nothing the source still sends (client-go reports the read
// it interrupted as an ERROR event) counts as a failure.
func TestMapEventsIgnoresEventsAfterStop(t *testing.T) {
	ch := make(chan watch.Event)
	called := 0
	m := mapEvents(watch.NewProxyWatcher(ch), func(ev watch.Event) watch.Event {
		called++
		return ev
	})
	m.Stop()
	select {
	case ch <- watch.Event{Type: watch.Error, Object: &metav1.Status{Code: 500}}:
	case <-time.After(5 * time.Second):
	}
	close(ch)
	for range m.ResultChan() {
		t.Error("an event passed after Stop")
	}
	if called != 0 {
		t.Errorf("fn called %d times after Stop", called)
	}
}

func TestTableWatchStopIsNoError(t *testing.T) {
	for range 20 { // StreamWatcher picks at random between its done and an error event
		pr, pw := io.Pipe()
		w := newTableWatch(klog.Background(), pr, &tableColumns{})
		w.Stop()
		for ev := range w.ResultChan() {
			t.Fatalf("event after Stop: %+v", ev)
		}
		_ = pw.Close()
	}
}

// TestEventHandler: OnChange says what each event did, and of a Secret's
// update whether its type or ServiceAccount changed; OnEvent still comes
// for the same events, after it; an update that changes nothing kept is
// neither.
func TestEventHandler(t *testing.T) {
	byName := func(name string) *resource {
		for i := range resources {
			if resources[i].name == name {
				return &resources[i]
			}
		}
		t.Fatalf("no resource %s", name)
		return nil
	}
	secret := func(rv string, typ corev1.SecretType, annotations map[string]string, labels map[string]string) *secretMeta {
		return newSecretMeta(metav1.ObjectMeta{Namespace: "ns", Name: "s", ResourceVersion: rv, Annotations: annotations, Labels: labels},
			typ, []string{"k"}, true, time.Time{})
	}
	token := corev1.SecretTypeServiceAccountToken
	account := func(name string) map[string]string { return map[string]string{corev1.ServiceAccountNameKey: name} }
	pod := func(rv, node string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p", ResourceVersion: rv}, Spec: corev1.PodSpec{NodeName: node}}
	}
	type call func(h cache.ResourceEventHandler)
	add := func(obj any) call { return func(h cache.ResourceEventHandler) { h.OnAdd(obj, false) } }
	update := func(old, cur any) call { return func(h cache.ResourceEventHandler) { h.OnUpdate(old, cur) } }
	del := func(obj any) call { return func(h cache.ResourceEventHandler) { h.OnDelete(obj) } }

	for _, tc := range []struct {
		name     string
		resource string
		call     call
		want     []string // OnChange then OnEvent, in call order
	}{
		{"secret added", "secrets", add(secret("1", token, account("a"), nil)), []string{"change secrets Secret added token=false", "event secrets"}},
		{"secret deleted", "secrets", del(secret("1", token, account("a"), nil)), []string{"change secrets Secret deleted token=false", "event secrets"}},
		{"secret label", "secrets", update(secret("1", token, account("a"), nil), secret("2", token, account("a"), map[string]string{"x": "y"})),
			[]string{"change secrets Secret updated token=false", "event secrets"}},
		{"secret annotation", "secrets", update(secret("1", corev1.SecretTypeOpaque, nil, nil), secret("2", corev1.SecretTypeOpaque, map[string]string{"team": "x"}, nil)),
			[]string{"change secrets Secret updated token=false", "event secrets"}},
		{"secret type", "secrets", update(secret("1", corev1.SecretTypeOpaque, account("a"), nil), secret("2", token, account("a"), nil)),
			[]string{"change secrets Secret updated token=true", "event secrets"}},
		{"secret account", "secrets", update(secret("1", token, account("a"), nil), secret("2", token, account("b"), nil)),
			[]string{"change secrets Secret updated token=true", "event secrets"}},
		{"secret account added", "secrets", update(secret("1", token, nil, nil), secret("2", token, account("b"), nil)),
			[]string{"change secrets Secret updated token=true", "event secrets"}},
		{"secret unchanged", "secrets", update(secret("1", token, account("a"), nil), secret("2", token, account("a"), nil)), nil},
		{"pod moved", "pods", update(pod("1", "n1"), pod("2", "n2")), []string{"change pods Pod updated token=false", "event pods"}},
		{"pod unchanged", "pods", update(pod("1", "n1"), pod("2", "n1")), nil},
		{"deployment added", "deployments", add(&struct{}{}), []string{"change deployments Deployment added token=false", "event deployments"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			h := eventHandler(byName(tc.resource), WatchOptions{
				OnChange: func(c Change) {
					got = append(got, fmt.Sprintf("change %s %s %s token=%v", c.Resource, c.Kind, c.Op, c.TokenChanged))
				},
				OnEvent: func(r string) { got = append(got, "event "+r) },
			})
			tc.call(h)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("calls %q, want %q", got, tc.want)
			}
		})
	}

	// Either callback alone still works; with neither there is no handler.
	events := 0
	eventHandler(byName("pods"), WatchOptions{OnEvent: func(string) { events++ }}).OnAdd(pod("1", "n1"), false)
	changes := 0
	eventHandler(byName("pods"), WatchOptions{OnChange: func(Change) { changes++ }}).OnDelete(pod("1", "n1"))
	if events != 1 || changes != 1 {
		t.Errorf("OnEvent alone called %d times, OnChange alone %d, want 1 each", events, changes)
	}
	if h := eventHandler(byName("pods"), WatchOptions{}); h != nil {
		t.Error("a handler without callbacks")
	}
}
