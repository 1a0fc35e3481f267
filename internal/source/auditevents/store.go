package auditevents

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/keyhole-sec/keyhole/internal/auditlog"
)

// Defaults of StoreOptions.
const (
	DefaultStoreName = "keyhole-audit-reads"
	// Shards is how many ConfigMaps hold the summary: entries go to one
	// by a hash of their Secret, so a shard stays within an object's
	// size at DefaultMaxEntries. It is fixed: a different count would
	// put entries already stored in another shard.
	Shards = 8
	// DefaultMaxShardBytes keeps a shard's compressed summary well below
	// the 1 MiB a ConfigMap may hold.
	DefaultMaxShardBytes = 900 << 10
	// DefaultFlushInterval is how often a replica merges its new reads
	// into the store and takes in the other replicas'.
	DefaultFlushInterval = 30 * time.Second
	// maxConflicts bounds the retries of one shard's write; past it the
	// reads stay pending for the next flush.
	maxConflicts = 16
)

// Labels and key of the ConfigMaps.
const (
	LabelComponent = "app.kubernetes.io/component"
	ComponentValue = "audit-summary"
	LabelShard     = "keyhole.io/shard"
	DataKey        = "summary.json.gz"
)

// StoreOptions configure a Store.
type StoreOptions struct {
	Client    kubernetes.Interface
	Namespace string
	// Name prefixes the ConfigMaps: NAME-0 to NAME-7;
	// DefaultStoreName when empty.
	Name string
	// Window is how far back stored reads are kept.
	Window time.Duration
	// MaxShardBytes bounds a shard; DefaultMaxShardBytes when zero.
	MaxShardBytes int
	Now           func() time.Time
	Logger        *slog.Logger
}

// Store keeps the summary in ConfigMaps of one namespace. Each replica
// merges only what it read since its last write into what is stored,
// shard by shard, with the resourceVersion of what it read: a write
// between the read and the update makes the update fail with a
// conflict, and the merge is done again on the new content. So replicas
// may write at the same time without losing or double-counting a read.
type Store struct {
	opts StoreOptions
	// beforeWrite, when set, runs between the read of a shard and its
	// write: tests use it to write in between.
	beforeWrite func(shard int)
}

// NewStore returns a store.
func NewStore(opts StoreOptions) (*Store, error) {
	if opts.Client == nil || opts.Namespace == "" {
		return nil, errors.New("auditevents: the store needs a client and a namespace")
	}
	if opts.Name == "" {
		opts.Name = DefaultStoreName
	}
	if opts.Window <= 0 {
		opts.Window = auditlog.DefaultWindow
	}
	if opts.MaxShardBytes <= 0 {
		opts.MaxShardBytes = DefaultMaxShardBytes
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Store{opts: opts}, nil
}

func (s *Store) shardName(i int) string { return s.opts.Name + "-" + strconv.Itoa(i) }

func (s *Store) ref(i int) string { return "configmap/" + s.opts.Namespace + "/" + s.shardName(i) }

// Load reads every shard and returns their union. A shard that does not
// exist is empty.
func (s *Store) Load(ctx context.Context) (*auditlog.State, error) {
	states := make([]*auditlog.State, 0, Shards)
	for i := 0; i < Shards; i++ {
		st, _, err := s.get(ctx, i)
		if err != nil {
			return nil, err
		}
		states = append(states, st)
	}
	return auditlog.Merge(s.opts.Now(), s.opts.Window, states...), nil
}

// get reads shard i: its state (nil when it does not exist) and the
// object, for its resourceVersion. A shard that cannot be decoded is
// logged and taken as empty, so that the next write replaces it rather
// than keyhole never writing again.
func (s *Store) get(ctx context.Context, i int) (*auditlog.State, *corev1.ConfigMap, error) {
	cm, err := s.opts.Client.CoreV1().ConfigMaps(s.opts.Namespace).Get(ctx, s.shardName(i), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", s.ref(i), err)
	}
	data, ok := cm.BinaryData[DataKey]
	if !ok {
		return nil, cm, nil
	}
	st, err := auditlog.DecodeState(data)
	if err != nil {
		s.opts.Logger.Error("audit summary: a stored shard cannot be read; the next write replaces it", "configmap", s.ref(i), "err", err)
		return nil, cm, nil
	}
	return st, cm, nil
}

// SaveResult is what Save did.
type SaveResult struct {
	// Merged is the union of every shard once the delta is in: the
	// summary to Rebase on. Nil when a shard failed.
	Merged *auditlog.State
	// Unsaved is the part of the delta that could not be written, to
	// RestoreDelta; nil when everything was written.
	Unsaved *auditlog.State
	// Dropped counts the entries dropped to fit shards in their size.
	Dropped int
}

// Save merges delta into the stored shards and returns the union. On an
// error, the shards written stay written and Unsaved holds the rest.
func (s *Store) Save(ctx context.Context, delta *auditlog.State) (SaveResult, error) {
	var res SaveResult
	parts := delta.Split(Shards)
	merged := make([]*auditlog.State, 0, Shards)
	var unsaved []*auditlog.State
	var errs []error
	for i, part := range parts {
		st, dropped, err := s.saveShard(ctx, i, part)
		res.Dropped += dropped
		if err != nil {
			errs = append(errs, err)
			if part.Len() > 0 {
				unsaved = append(unsaved, part)
			}
			continue
		}
		merged = append(merged, st)
	}
	now := s.opts.Now()
	if len(errs) > 0 {
		if len(unsaved) > 0 {
			res.Unsaved = auditlog.Merge(now, s.opts.Window, unsaved...)
		}
		return res, errors.Join(errs...)
	}
	res.Merged = auditlog.Merge(now, s.opts.Window, merged...)
	return res, nil
}

// saveShard merges part into shard i, retrying on conflicts. Nothing is
// written when part adds nothing to what is stored.
func (s *Store) saveShard(ctx context.Context, i int, part *auditlog.State) (*auditlog.State, int, error) {
	for attempt := 0; attempt < maxConflicts; attempt++ {
		stored, cm, err := s.get(ctx, i)
		if err != nil {
			return nil, 0, err
		}
		olderStart := !part.Since.IsZero() && (stored == nil || stored.Since.IsZero() || part.Since.Before(stored.Since))
		if part.Len() == 0 && !olderStart {
			return stored, 0, nil
		}
		merged := auditlog.Merge(s.opts.Now(), s.opts.Window, stored, part)
		data, dropped, err := s.encode(merged)
		if err != nil {
			return nil, 0, fmt.Errorf("encoding %s: %w", s.ref(i), err)
		}
		if s.beforeWrite != nil {
			s.beforeWrite(i)
		}
		if cm == nil {
			cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
				Name: s.shardName(i), Namespace: s.opts.Namespace,
				Labels: map[string]string{
					"app.kubernetes.io/name":       "keyhole",
					"app.kubernetes.io/managed-by": "keyhole",
					LabelComponent:                 ComponentValue,
					LabelShard:                     strconv.Itoa(i),
				},
			}}
			cm.BinaryData = map[string][]byte{DataKey: data}
			_, err = s.opts.Client.CoreV1().ConfigMaps(s.opts.Namespace).Create(ctx, cm, metav1.CreateOptions{})
		} else {
			cm = cm.DeepCopy()
			if cm.BinaryData == nil {
				cm.BinaryData = map[string][]byte{}
			}
			cm.BinaryData[DataKey] = data
			_, err = s.opts.Client.CoreV1().ConfigMaps(s.opts.Namespace).Update(ctx, cm, metav1.UpdateOptions{})
		}
		switch {
		case err == nil:
			return merged, dropped, nil
		case apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err):
			// Another replica wrote in between: merge into its content.
			continue
		default:
			return nil, 0, fmt.Errorf("writing %s: %w", s.ref(i), err)
		}
	}
	return nil, 0, fmt.Errorf("writing %s: still conflicting after %d attempts", s.ref(i), maxConflicts)
}

// encode compresses st, dropping its least recently read entries, a
// tenth at a time, until it fits in a shard.
func (s *Store) encode(st *auditlog.State) ([]byte, int, error) {
	dropped := 0
	for {
		data, err := st.Encode()
		if err != nil {
			return nil, dropped, err
		}
		if len(data) <= s.opts.MaxShardBytes || st.Len() == 0 {
			return data, dropped, nil
		}
		dropped += st.DropOldest(0.1)
	}
}
