package auditevents

import (
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/keyhole-sec/keyhole/internal/auditlog"
	"github.com/keyhole-sec/keyhole/internal/rbac"
	"github.com/keyhole-sec/keyhole/internal/testenv"
)

func reads(s *auditlog.Summary, user string, n int, ns, name string, at time.Time) {
	for range n {
		s.Add(auditlog.Read{User: user, Groups: []string{"system:authenticated"}, Namespace: ns, Name: name, Verb: rbac.VerbGet, Time: at, UserAgent: "kubectl"})
	}
}

func countOf(snap *auditlog.Snapshot, user, ns, name string) int {
	for _, r := range snap.Reads {
		if r.User == user && r.Namespace == ns && r.Name == name {
			return r.Count
		}
	}
	return 0
}

// TestStore runs the store against a real API server (one for both
// subtests: a control plane costs seconds of CPU).
func TestStore(t *testing.T) {
	cp := testenv.StartT(t, testenv.Options{NoControllerManager: true})
	client, err := kubernetes.NewForConfig(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("concurrent writers", func(t *testing.T) { testConcurrentWriters(t, client) })
	t.Run("bounded shards", func(t *testing.T) { testBoundedShards(t, client) })
}

// testConcurrentWriters runs two replicas' flushes, the second writing
// between the first's read of a shard and its write: the first's update
// conflicts, it merges again on the new content, and every read is
// stored exactly once. A third replica, started afterwards, loads all of
// it: a restart or a failover loses nothing.
func testConcurrentWriters(t *testing.T, client kubernetes.Interface) {
	ctx := t.Context()
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "keyhole"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	start := now.Add(-time.Hour)
	newReplica := func(started time.Time) (*auditlog.Summary, *Store, *Persister) {
		clock := started
		s := auditlog.NewSummary(auditlog.Options{Now: func() time.Time { return clock }})
		st, err := NewStore(StoreOptions{Client: client, Namespace: "keyhole"})
		if err != nil {
			t.Fatal(err)
		}
		return s, st, &Persister{Summary: s, Store: st}
	}
	a, storeA, pa := newReplica(start)
	b, _, pb := newReplica(start.Add(time.Minute))
	reads(a, "alice", 10, "shop", "db", now)
	reads(b, "alice", 5, "shop", "db", now.Add(time.Second))
	reads(b, "bob", 3, "shop", "api", now)

	// B's first flush happens inside A's, after A read the shards.
	attempts := map[int]int{}
	storeA.beforeWrite = func(shard int) {
		attempts[shard]++
		if len(attempts) == 1 && attempts[shard] == 1 {
			if !pb.Flush(ctx) {
				t.Error("B's flush failed")
			}
		}
	}
	if !pa.Flush(ctx) {
		t.Fatal("A's flush failed")
	}
	conflicted := false
	for shard, n := range attempts {
		if n > 1 {
			conflicted = true
			t.Logf("shard %d: %d attempts", shard, n)
		}
	}
	if !conflicted {
		t.Errorf("no write of A conflicted with B's (attempts %v): the test did not test the merge", attempts)
	}
	// B takes in A's reads at its next flush.
	if !pb.Flush(ctx) {
		t.Fatal("B's second flush failed")
	}
	for name, s := range map[string]*auditlog.Summary{"A": a, "B": b} {
		snap := s.Snapshot()
		if got := countOf(snap, "alice", "shop", "db"); got != 15 {
			t.Errorf("%s: alice read shop/db %d times, want 15", name, got)
		}
		if got := countOf(snap, "bob", "shop", "api"); got != 3 {
			t.Errorf("%s: bob read shop/api %d times, want 3", name, got)
		}
		if !snap.Since.Equal(start.UTC().Truncate(time.Millisecond)) && !snap.Since.Equal(start.UTC()) {
			t.Errorf("%s: since %v, want the oldest start %v", name, snap.Since, start)
		}
	}

	// A new replica (a restart) loads everything, and its own flush of
	// nothing new changes no count.
	c, _, pc := newReplica(now)
	for range 2 {
		if !pc.Flush(ctx) {
			t.Fatal("C's flush failed")
		}
	}
	snap := c.Snapshot()
	if countOf(snap, "alice", "shop", "db") != 15 || countOf(snap, "bob", "shop", "api") != 3 {
		t.Errorf("after a restart: %+v", snap.Reads)
	}
	st, err := storeA.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Len() != 2 {
		t.Errorf("the store holds %d entries, want 2", st.Len())
	}
	cms, err := client.CoreV1().ConfigMaps("keyhole").List(ctx, metav1.ListOptions{LabelSelector: LabelComponent + "=" + ComponentValue})
	if err != nil {
		t.Fatal(err)
	}
	if len(cms.Items) == 0 || len(cms.Items) > Shards {
		t.Errorf("%d ConfigMaps", len(cms.Items))
	}
}

// testBoundedShards: a shard over its size drops its least recently read
// entries, and says how many.
func testBoundedShards(t *testing.T, client kubernetes.Interface) {
	ctx := t.Context()
	now := time.Now()
	s := auditlog.NewSummary(auditlog.Options{})
	for i := range 3000 {
		reads(s, fmt.Sprintf("system:serviceaccount:ns%d:sa%d", i%50, i), 1, fmt.Sprintf("ns%d", i%50), fmt.Sprintf("secret-%d", i), now.Add(time.Duration(i)*time.Millisecond))
	}
	st, err := NewStore(StoreOptions{Client: client, Namespace: "default", Name: "small", MaxShardBytes: 1 << 10})
	if err != nil {
		t.Fatal(err)
	}
	rec := newCounts()
	p := &Persister{Summary: s, Store: st, Recorder: rec}
	if !p.Flush(ctx) {
		t.Fatal("flush failed")
	}
	c := rec.snapshot()
	if c.storeDropped == 0 || c.persistErrors != 0 {
		t.Errorf("recorded %+v, want entries dropped and no error", c)
	}
	for i := range Shards {
		cm, err := client.CoreV1().ConfigMaps("default").Get(ctx, fmt.Sprintf("small-%d", i), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if n := len(cm.BinaryData[DataKey]); n > 1<<10 {
			t.Errorf("shard %d holds %d bytes, over the limit", i, n)
		}
	}
	// The newest read survives.
	if countOf(s.Snapshot(), "system:serviceaccount:ns49:sa2999", "ns49", "secret-2999") != 1 {
		t.Error("the most recent read was dropped")
	}
}
