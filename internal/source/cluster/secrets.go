package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	"github.com/keyhole-sec/keyhole/internal/inventory"
)

// tableAccept asks for a server-side Table instead of the objects. With
// includeObject=Metadata every row carries the Secret's metadata (as
// PartialObjectMetadata) beside the printed columns; data is never sent.
const tableAccept = "application/json;as=Table;v=v1;g=meta.k8s.io"

// secretTableRequest asks for a Table of Secrets with metadata-only rows,
// so no value crosses the wire: key names come from managedFields, which
// record field paths, not values. The one value-bearing thing that can
// still arrive is the last-applied annotation (kubectl puts the whole
// manifest there); newSecretMeta drops it as each row is converted. The
// same request serves LIST and, with opts.Watch, WATCH.
func secretTableRequest(c rest.Interface, opts metav1.ListOptions) *rest.Request {
	return c.Get().Resource("secrets").
		SetHeader("Accept", tableAccept).
		Param("includeObject", string(metav1.IncludeMetadata)).
		VersionedParams(&opts, scheme.ParameterCodec)
}

// secretTablePage lists one page of Secrets as a Table.
func secretTablePage(c rest.Interface, cols *tableColumns) secretPage {
	return func(ctx context.Context, opts metav1.ListOptions) (*secretList, error) {
		res := secretTableRequest(c, opts).Do(ctx)
		// Error, not Raw's error: only Error decodes the server's Status,
		// which says why (e.g. which user may not list secrets).
		if err := res.Error(); err != nil {
			return nil, err
		}
		raw, _ := res.Raw()
		return decodeSecretTable(raw, cols)
	}
}

// secretFullPage lists one page of whole Secrets and converts it at once,
// so values live only as long as one page.
func secretFullPage(c kubernetes.Interface) secretPage {
	return func(ctx context.Context, opts metav1.ListOptions) (*secretList, error) {
		l, err := c.CoreV1().Secrets("").List(ctx, opts)
		if err != nil {
			return nil, err
		}
		out := &secretList{ListMeta: l.ListMeta, Items: make([]secretMeta, len(l.Items))}
		for i := range l.Items {
			out.Items[i] = *secretMetaFromAPI(&l.Items[i])
		}
		return out, nil
	}
}

// secretPage lists one page of Secrets without their values.
type secretPage func(ctx context.Context, opts metav1.ListOptions) (*secretList, error)

// pages adapts a secretPage to Load.
func (page secretPage) pages(ctx context.Context, limit int64, cont string) ([]any, string, error) {
	l, err := page(ctx, metav1.ListOptions{Limit: limit, Continue: cont})
	if err != nil {
		return nil, "", err
	}
	return l.inventory(), l.Continue, nil
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
	Rows []secretRow `json:"rows"`
}

type secretRow struct {
	Cells  []json.RawMessage `json:"cells"`
	Object *struct {
		Metadata metav1.ObjectMeta `json:"metadata"`
	} `json:"object"`
}

// tableColumns remembers where the Type and Data columns of a Table of
// Secrets are. Columns are found by name, as a server may add or reorder
// them. A watch sends the column definitions with its first event only,
// so the positions learned from the last Table that had them serve the
// Tables after it. Safe for concurrent use.
type tableColumns struct {
	mu sync.Mutex
	// typ and data are the columns' indices, -1 when absent; known is
	// false until a Table with definitions was seen.
	typ, data int
	known     bool
}

// of returns the Type and Data columns of t, -1 when absent or not known
// yet, learning them when t has column definitions.
func (c *tableColumns) of(t *secretTable) (typ, data int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(t.ColumnDefinitions) > 0 {
		c.typ, c.data, c.known = -1, -1, true
		for i, d := range t.ColumnDefinitions {
			switch strings.ToLower(d.Name) {
			case "type":
				c.typ = i
			case "data":
				c.data = i
			}
		}
	}
	if !c.known {
		return -1, -1
	}
	return c.typ, c.data
}

// decodeSecretTable converts one Table of Secrets.
func decodeSecretTable(raw []byte, cols *tableColumns) (*secretList, error) {
	var t secretTable
	if err := json.Unmarshal(raw, &t); err != nil {
		return nil, errUnreadableTable
	}
	out := &secretList{ListMeta: t.Metadata, Items: make([]secretMeta, 0, len(t.Rows))}
	typeCol, dataCol := cols.of(&t)
	for i := range t.Rows {
		s, err := t.secret(i, typeCol, dataCol)
		if err != nil {
			return nil, err
		}
		out.Items = append(out.Items, *s)
	}
	return out, nil
}

// secret converts row i of t, whose Type and Data columns are typeCol and
// dataCol (-1 when unknown).
func (t *secretTable) secret(i, typeCol, dataCol int) (*secretMeta, error) {
	if typeCol < 0 {
		return nil, errNoTypeColumn
	}
	row := &t.Rows[i]
	if row.Object == nil {
		return nil, errNoRowObject
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
	return secretFromMetadata(&row.Object.Metadata, corev1.SecretType(typ), count), nil
}

// secretFromMetadata builds the value-free Secret from metadata alone.
// count is the number of data keys the server printed, or -1: it settles
// the case managedFields cannot (a Secret with no data records no f:data)
// and reveals key lists that managedFields left incomplete.
func secretFromMetadata(m *metav1.ObjectMeta, typ corev1.SecretType, count int) *secretMeta {
	md := inventory.ManagedDataOf(m.ManagedFields)
	keys, known := md.Keys, md.Recorded
	switch {
	case count == 0:
		keys, known = []string{}, true
	case count > 0 && len(keys) != count:
		known = false
	}
	return newSecretMeta(*m, typ, keys, known, md.WrittenAt)
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
	objs, err := listAll(withoutLogging(ctx), secretsRes.api(cs, opts.SecretsVia).pages, opts.PageSize)
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
