package vault

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/hashicorp/vault/api"

	"github.com/keyhole-sec/keyhole/internal/gitscan"
	"github.com/keyhole-sec/keyhole/internal/migrate"
)

// Outcome is what --apply did with one Secret.
type Outcome string

// The outcomes. Written, Overwritten and Unchanged are done; the others
// are not, and a re-run retries them.
const (
	// Written: the path was new (or its latest version deleted) and now
	// holds the Secret's data, written with check-and-set.
	Written Outcome = "written"
	// Overwritten: the path held different data and --force replaced it,
	// with check-and-set on the version that was read.
	Overwritten Outcome = "overwritten"
	// Unchanged: the path already held exactly this data; nothing was
	// written and its version is the same.
	Unchanged Outcome = "unchanged"
	// Refused: the path holds different data and --force was not given.
	Refused Outcome = "refused"
	// Failed: Vault refused or failed a read or write, or the read-back
	// differed. Error says which.
	Failed Outcome = "failed"
	// NotAttempted: the run stopped (interrupted) before this Secret.
	NotAttempted Outcome = "not attempted"
	// DoneEarlier: the journal records this Secret as written by an
	// earlier run of the same batch, which stopped halfway.
	DoneEarlier Outcome = "done earlier"
)

// Done reports whether the Secret's data is in Vault, verified (now, or
// by the earlier run the journal records).
func (o Outcome) Done() bool {
	return o == Written || o == Overwritten || o == Unchanged || o == DoneEarlier
}

// Result is the outcome for one Secret. It never holds a value.
type Result struct {
	Secret  string  `json:"secret"`
	Path    string  `json:"path"`
	Outcome Outcome `json:"outcome"`
	// Version is the KV v2 version that holds the data after the run
	// (Written, Overwritten, Unchanged), or the current version that
	// was not overwritten (Refused).
	Version int    `json:"version,omitempty"`
	Error   string `json:"error,omitempty"`
}

// Apply writes every entry of the plan to Vault's KV v2 engine:
//
//   - a new path is written with cas=0, so that a path created meanwhile
//     is never overwritten;
//   - an existing path whose data is identical (compared as keyed hashes)
//     is left alone: re-running Apply writes nothing and keeps the
//     version;
//   - an existing path with different data is refused unless force, and
//     then written with cas set to the version that was compared;
//   - every write is read back and compared, as keyed hashes, to what
//     was meant.
//
// Each Secret is one step of journal j (nil for none): a re-run after a
// failure skips the Secrets j records as done (DoneEarlier), and j is
// removed once all are done. A failed Secret does not stop the others,
// so that the results say for each what was done; only a cancelled ctx
// stops the batch, leaving the rest NotAttempted. The error is about the
// hashing key or the journal; Secret failures are in the results.
func Apply(ctx context.Context, client *api.Client, p *Plan, force bool, j *migrate.Journal) ([]Result, error) {
	h, err := newHasher()
	if err != nil {
		return nil, err
	}
	kv := client.KVv2(p.Mount)
	results := make([]Result, len(p.Entries))
	tasks := make([]migrate.Task, len(p.Entries))
	index := map[string]int{}
	for i, e := range p.Entries {
		results[i] = Result{Secret: e.Ref(), Path: p.Mount + "/" + e.Path, Outcome: NotAttempted}
		index[e.Ref()] = i
		tasks[i] = migrate.Task{Ref: e.Ref(), Step: StepName(p, e), Do: func(ctx context.Context) error {
			r := &results[i]
			applyOne(ctx, kv, h, e, force, r)
			if !r.Outcome.Done() {
				return errors.New(r.Error)
			}
			return nil
		}}
	}
	out, err := j.Run(ctx, tasks)
	if out != nil {
		for _, t := range out.Resumed {
			results[index[t.Ref]].Outcome = DoneEarlier
		}
	}
	return results, err
}

// StepName is the journal step of an entry: the KV v2 path it writes, so
// that a changed --kv-mount or --path-template is a new step.
func StepName(p *Plan, e *Entry) string { return "vault kv put " + p.Mount + "/" + e.Path }

func applyOne(ctx context.Context, kv *api.KVv2, h *hasher, e *Entry, force bool, r *Result) {
	want := h.sum(e.values.m)
	fail := func(format string, args ...any) {
		r.Outcome = Failed
		r.Error = fmt.Sprintf(format, args...)
	}
	cur, err := kv.Get(ctx, e.Path)
	cas := 0
	outcome := Written
	switch {
	case errors.Is(err, api.ErrSecretNotFound):
		// A new path: cas=0 writes only if it still does not exist.
	case err != nil:
		fail("reading %s: %s", e.APIPath, vaultReason(err))
		return
	case cur.VersionMetadata == nil:
		fail("reading %s: Vault returned no version metadata (is the mount KV v2?)", e.APIPath)
		return
	case cur.Data == nil:
		// The latest version is deleted or destroyed: there is no value
		// to overwrite.
		cas = cur.VersionMetadata.Version
	case hmac.Equal(h.sum(cur.Data), want):
		r.Outcome, r.Version = Unchanged, cur.VersionMetadata.Version
		return
	case !force:
		r.Outcome, r.Version = Refused, cur.VersionMetadata.Version
		r.Error = fmt.Sprintf("%s already holds different data (version %d); pass --force to write a new version over it", e.APIPath, cur.VersionMetadata.Version)
		return
	default:
		cas, outcome = cur.VersionMetadata.Version, Overwritten
	}
	written, err := kv.Put(ctx, e.Path, e.values.m, api.WithCheckAndSet(cas))
	if err != nil {
		if isCASMismatch(err) {
			fail("writing %s: it changed after keyhole read it (check-and-set on version %d failed); re-run to compare again", e.APIPath, cas)
			return
		}
		fail("writing %s: %s", e.APIPath, vaultReason(err))
		return
	}
	back, err := kv.Get(ctx, e.Path)
	if err != nil {
		fail("verifying %s after the write: %s", e.APIPath, vaultReason(err))
		return
	}
	if back.Data == nil || !hmac.Equal(h.sum(back.Data), want) {
		fail("verifying %s: the data read back differs from what was written", e.APIPath)
		return
	}
	r.Outcome = outcome
	if back.VersionMetadata != nil {
		r.Version = back.VersionMetadata.Version
	} else if written.VersionMetadata != nil {
		r.Version = written.VersionMetadata.Version
	}
}

func isCASMismatch(err error) bool {
	var re *api.ResponseError
	if !errors.As(err, &re) {
		return false
	}
	for _, m := range re.Errors {
		if strings.Contains(m, "check-and-set") {
			return true
		}
	}
	return false
}

// vaultReason is one line for a Vault client error: the status and
// Vault's own messages, which name paths and policies, never data.
func vaultReason(err error) string {
	var re *api.ResponseError
	if errors.As(err, &re) {
		msg := fmt.Sprintf("HTTP %d", re.StatusCode)
		var parts []string
		for _, e := range re.Errors {
			// Vault wraps its messages as a multierror list: "1 error
			// occurred:\n\t* permission denied".
			e = multiErrorHeader.ReplaceAllString(e, "")
			for _, item := range strings.Split(e, "\n") {
				if item = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(item), "* ")); item != "" {
					parts = append(parts, item)
				}
			}
		}
		if len(parts) > 0 {
			msg += ": " + strings.Join(parts, "; ")
		}
		return oneLine(msg)
	}
	return oneLine(err.Error())
}

var multiErrorHeader = regexp.MustCompile(`^\s*\d+ errors? occurred:`)

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// hasher computes HMAC-SHA256 of a KV data map under a key drawn for
// this run. A plain hash of a short value can be reversed by trying
// candidates; a keyed one cannot without the key, which never leaves
// the process.
type hasher struct{ key []byte }

func newHasher() (*hasher, error) {
	key, err := gitscan.NewRandomKey()
	if err != nil {
		return nil, fmt.Errorf("drawing a hashing key: %w", err)
	}
	return &hasher{key: key}, nil
}

// sum hashes the map in a canonical form: keys sorted, every field
// length-prefixed, strings tagged apart from other JSON values (so that
// "1" and 1 differ).
func (h *hasher) sum(data map[string]any) []byte {
	mac := hmac.New(sha256.New, h.key)
	keys := make([]string, 0, len(data))
	for k := range data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	writeField(mac, []byte(strconv.Itoa(len(keys))))
	for _, k := range keys {
		writeField(mac, []byte(k))
		switch v := data[k].(type) {
		case string:
			writeField(mac, []byte{'s'})
			writeField(mac, []byte(v))
		default:
			b, err := json.Marshal(v)
			if err != nil {
				b = []byte{0xff} // cannot match any string value
			}
			writeField(mac, []byte{'j'})
			writeField(mac, b)
		}
	}
	return mac.Sum(nil)
}

func writeField(w hash.Hash, b []byte) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(b)))
	_, _ = w.Write(n[:])
	_, _ = w.Write(b)
}
