package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
)

// secretsAPI reads Secrets without keeping a value: as Tables of metadata
// (SecretsViaTable), or in full with each page and each event converted as
// soon as it is decoded (SecretsViaFull). Either way list and watch
// deliver secretMetas: in full, values live as long as one page or one
// event, even while the reflector gathers a whole list, and the informer
// never sees one. Its transform would convert a whole Secret too; none
// can reach it, as the reflector refuses objects of another type.
func secretsAPI(c kubernetes.Interface, via string) api {
	a := api{object: &secretMeta{}, transform: transformSecret}
	var page secretPage
	if via == SecretsViaFull {
		page = secretFullPage(c)
		a.watch = func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			w, err := c.CoreV1().Secrets("").Watch(ctx, opts)
			if err != nil {
				return nil, err
			}
			return mapEvents(w, func(ev watch.Event) watch.Event {
				if s, ok := ev.Object.(*corev1.Secret); ok {
					ev.Object = secretMetaFromAPI(s)
				}
				return ev
			}), nil
		}
	} else {
		// One memory of the columns for the lists and watches of this
		// api: a watch's later events come without definitions.
		cols := &tableColumns{}
		rc := c.CoreV1().RESTClient()
		page = secretTablePage(rc, cols)
		a.watch = func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			opts.Watch = true
			body, err := secretTableRequest(rc, opts).Stream(ctx)
			if err != nil {
				return nil, err
			}
			return newTableWatch(klog.FromContext(ctx), body, cols), nil
		}
	}
	a.pages = page.pages
	a.list = func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
		l, err := page(ctx, opts)
		if err != nil {
			return nil, err
		}
		return l, nil
	}
	return a
}

// newTableWatch decodes a watch of Secrets requested as Tables
// (secretTableRequest with Watch set). Each event's object is a Table of
// one row, whose column definitions the API server sends with the first
// event of the stream only; later events are read with the positions cols
// learned. A bookmark is a Table whose one row has empty cells and only a
// resource version; an ERROR event carries a metav1.Status, passed on as
// it is so that the reflector re-lists on 410 Gone.
func newTableWatch(logger klog.Logger, body io.ReadCloser, cols *tableColumns) watch.Interface {
	return watch.NewStreamWatcherWithLogger(logger, &tableDecoder{body: body, dec: json.NewDecoder(body), cols: cols}, tableWatchReporter{})
}

const (
	errUnreadableEvent ownError = "a watch event of Secrets could not be decoded"
	errUnknownEvent    ownError = "a watch event of Secrets has an unknown type"
	errRowCount        ownError = "a watch event of Secrets does not hold exactly one row"
	errUnreadableError ownError = "a watch ERROR event of Secrets holds no Status"
)

// tableDecoder implements watch.Decoder for Tables of Secrets. Its errors
// are this package's own texts or transport errors, never a quote of the
// stream, which the StreamWatcher would put into an event.
type tableDecoder struct {
	body io.ReadCloser
	dec  *json.Decoder
	cols *tableColumns
	// closed is set by Close: the read it interrupts ends the watch
	// normally rather than as an error.
	closed atomic.Bool
}

func (d *tableDecoder) Decode() (watch.EventType, runtime.Object, error) {
	var ev struct {
		Type   watch.EventType `json:"type"`
		Object json.RawMessage `json:"object"`
	}
	if err := d.dec.Decode(&ev); err != nil {
		if d.closed.Load() {
			return "", nil, io.EOF
		}
		var syntax *json.SyntaxError
		var typ *json.UnmarshalTypeError
		if errors.As(err, &syntax) || errors.As(err, &typ) {
			return "", nil, errUnreadableEvent
		}
		// io.EOF ends the watch normally; other read errors are the
		// transport's and name no object.
		return "", nil, err
	}
	obj, err := decodeTableEvent(ev.Type, ev.Object, d.cols)
	if err != nil {
		return "", nil, err
	}
	return ev.Type, obj, nil
}

func (d *tableDecoder) Close() {
	d.closed.Store(true)
	_ = d.body.Close()
}

// decodeTableEvent converts the object of one watch event.
func decodeTableEvent(typ watch.EventType, raw []byte, cols *tableColumns) (runtime.Object, error) {
	switch typ {
	case watch.Added, watch.Modified, watch.Deleted, watch.Bookmark:
	case watch.Error:
		var st metav1.Status
		if err := json.Unmarshal(raw, &st); err != nil || (st.Code == 0 && st.Status == "") {
			return nil, errUnreadableError
		}
		return &st, nil
	default:
		return nil, errUnknownEvent
	}
	var t secretTable
	if err := json.Unmarshal(raw, &t); err != nil {
		return nil, errUnreadableEvent
	}
	// Learned from any event that has them, should the stream's first be
	// a bookmark.
	typeCol, dataCol := cols.of(&t)
	if typ == watch.Bookmark {
		// Its row carries only a resource version (and the
		// initial-events-end annotation).
		b := &secretMeta{}
		b.ResourceVersion = t.Metadata.ResourceVersion
		if len(t.Rows) == 1 && t.Rows[0].Object != nil {
			b.ObjectMeta = t.Rows[0].Object.Metadata
		}
		return b, nil
	}
	if len(t.Rows) != 1 {
		return nil, errRowCount
	}
	return t.secret(0, typeCol, dataCol)
}

// tableWatchReporter turns a decoding error into the ERROR event the
// StreamWatcher sends: a 500, which the reflector answers by watching
// again. The message is the decoder's, so it holds no value.
type tableWatchReporter struct{}

func (tableWatchReporter) AsObject(err error) runtime.Object {
	return &metav1.Status{
		Status:  metav1.StatusFailure,
		Code:    http.StatusInternalServerError,
		Reason:  metav1.StatusReasonInternalError,
		Message: err.Error(),
	}
}
