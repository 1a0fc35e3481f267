package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	"github.com/keyhole-sec/keyhole/internal/inventory"
)

// tableAccept asks for a server-side Table instead of the objects. With
// includeObject=Metadata every row carries the Secret's metadata (as
// PartialObjectMetadata) beside the printed columns; data is never sent.
const tableAccept = "application/json;as=Table;v=v1;g=meta.k8s.io"

// secretTablePages reads Secrets as a Table, so no value crosses the wire.
// Key names come from managedFields, which record field paths, not
// values. The one value-bearing thing that can still arrive is the
// last-applied annotation (kubectl puts the whole manifest there); it is
// dropped as each row is converted.
func secretTablePages(c rest.Interface) pageFunc {
	return func(ctx context.Context, limit int64, cont string) ([]any, string, error) {
		req := c.Get().Resource("secrets").
			SetHeader("Accept", tableAccept).
			Param("includeObject", string(metav1.IncludeMetadata)).
			Param("limit", strconv.FormatInt(limit, 10))
		if cont != "" {
			req = req.Param("continue", cont)
		}
		res := req.Do(ctx)
		// Error, not Raw's error: only Error decodes the server's Status,
		// which says why (e.g. which user may not list secrets).
		if err := res.Error(); err != nil {
			return nil, "", err
		}
		raw, _ := res.Raw()
		return secretsFromTable(raw)
	}
}

const (
	errUnreadableTable ownError = "the server's Table of Secrets could not be decoded"
	errNoTypeColumn    ownError = "the server's Table of Secrets has no Type column: read Secrets in full instead"
	errNoRowObject     ownError = "the server's Table of Secrets has rows without metadata"
)

// secretTable is the part of a meta.k8s.io/v1 Table of Secrets that is
// read. Decoding it in one pass, rather than into metav1.Table and then
// each row's RawExtension again, scans each row once instead of three
// times.
type secretTable struct {
	Metadata          metav1.ListMeta `json:"metadata"`
	ColumnDefinitions []struct {
		Name string `json:"name"`
	} `json:"columnDefinitions"`
	Rows []struct {
		Cells  []json.RawMessage `json:"cells"`
		Object *struct {
			Metadata metav1.ObjectMeta `json:"metadata"`
		} `json:"object"`
	} `json:"rows"`
}

// secretsFromTable converts one page of a Table of Secrets. Columns are
// found by name: a server may add or reorder them.
func secretsFromTable(raw []byte) ([]any, string, error) {
	var t secretTable
	if err := json.Unmarshal(raw, &t); err != nil {
		return nil, "", errUnreadableTable
	}
	typeCol, dataCol := -1, -1
	for i, c := range t.ColumnDefinitions {
		switch strings.ToLower(c.Name) {
		case "type":
			typeCol = i
		case "data":
			dataCol = i
		}
	}
	if typeCol < 0 && len(t.Rows) > 0 {
		return nil, "", errNoTypeColumn
	}
	out := make([]any, 0, len(t.Rows))
	for i := range t.Rows {
		row := &t.Rows[i]
		if row.Object == nil {
			return nil, "", errNoRowObject
		}
		var typ string
		if typeCol < len(row.Cells) {
			_ = json.Unmarshal(row.Cells[typeCol], &typ)
		}
		count := -1
		if dataCol >= 0 && dataCol < len(row.Cells) {
			if err := json.Unmarshal(row.Cells[dataCol], &count); err != nil {
				count = -1
			}
		}
		out = append(out, secretFromMetadata(&row.Object.Metadata, corev1.SecretType(typ), count))
	}
	return out, t.Metadata.Continue, nil
}

// secretFromMetadata builds the value-free Secret from metadata alone,
// through inventory.SecretFromMetadata as SecretFromAPI does. count is the number of
// data keys the server printed, or -1: it settles the case managedFields
// cannot (a Secret with no data records no f:data) and reveals key lists
// that managedFields left incomplete.
func secretFromMetadata(m *metav1.ObjectMeta, typ corev1.SecretType, count int) *inventory.Secret {
	md := inventory.ManagedDataOf(m.ManagedFields)
	keys, known := md.Keys, md.Recorded
	switch {
	case count == 0:
		keys, known = []string{}, true
	case count > 0 && len(keys) != count:
		known = false
	}
	return inventory.SecretFromMetadata(m, typ, keys, known, md.WrittenAt)
}

// secretFullPages lists whole Secrets and converts each page at once, so
// values live only as long as one page.
func secretFullPages(c kubernetes.Interface) pageFunc {
	return func(ctx context.Context, limit int64, cont string) ([]any, string, error) {
		l, err := c.CoreV1().Secrets("").List(ctx, metav1.ListOptions{Limit: limit, Continue: cont})
		if err != nil {
			return nil, "", err
		}
		out := make([]any, len(l.Items))
		for i := range l.Items {
			out[i] = inventory.SecretFromAPI(&l.Items[i])
		}
		return out, l.Continue, nil
	}
}

// withoutLogging gives client-go a logger that discards, so that it never
// logs a Secrets response body, whatever the klog verbosity (client-go
// logs bodies at -v=8 through the context's logger).
func withoutLogging(ctx context.Context) context.Context {
	return klog.NewContext(ctx, klog.Logger{})
}

// Stats measures one complete LIST of Secrets.
type Stats struct {
	// Via is the strategy measured.
	Via string
	// Objects is the number of Secrets read.
	Objects int
	// Pages is the number of requests made.
	Pages int
	// BytesRead is the size of the response bodies as decoded by the
	// HTTP transport (after gzip), i.e. what the process had to parse.
	BytesRead int64
	// Allocated is the heap allocated by the whole process during the
	// LIST (runtime TotalAlloc), so only meaningful in a quiet process.
	Allocated uint64
	// Duration is the wall time of the LIST.
	Duration time.Duration
}

// MeasureSecretsList lists every Secret once the way Load would with opts
// and returns what it cost, for comparing the strategies. The Secrets are
// converted and then discarded.
func MeasureSecretsList(ctx context.Context, cfg *rest.Config, opts Options) (Stats, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return Stats{}, err
	}
	var read, pages atomic.Int64
	c := rest.CopyConfig(cfg)
	c.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return countingTransport{rt: rt, read: &read, requests: &pages}
	})
	cs, err := clientset(c)
	if err != nil {
		return Stats{}, err
	}
	var secretsRes *resource
	for i := range resources {
		if resources[i].name == "secrets" {
			secretsRes = &resources[i]
		}
	}

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	objs, err := listAll(withoutLogging(ctx), secretsRes.pages(cs, opts), opts.PageSize)
	st := Stats{Via: opts.SecretsVia, Duration: time.Since(start)}
	runtime.ReadMemStats(&after)
	st.Allocated = after.TotalAlloc - before.TotalAlloc
	st.BytesRead, st.Pages, st.Objects = read.Load(), int(pages.Load()), len(objs)
	if err != nil {
		return st, fmt.Errorf("list secrets: %s", listReason(err, true))
	}
	return st, nil
}

type countingTransport struct {
	rt       http.RoundTripper
	read     *atomic.Int64
	requests *atomic.Int64
}

func (t countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.rt.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	t.requests.Add(1)
	resp.Body = countingBody{ReadCloser: resp.Body, n: t.read}
	return resp, nil
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}
