package encryption

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The metric families Parse reads. Everything else of the exposition (1.6
// MB on an idle test apiserver, tens of MB on a busy one) is skipped line
// by line as it streams by, never held.
//
// apiserver_storage_transformation_duration_seconds would name providers
// too, but has no resource label: it cannot tell Secrets from other
// encrypted resources.
const (
	familyOperations = "apiserver_storage_transformation_operations_total"
	familyConfigInfo = "apiserver_encryption_config_controller_last_config_info"
	familyBuildInfo  = "kubernetes_build_info"
)

// The labels of familyOperations that tell (checked on v1.34.4: resource,
// transformation_type, transformer_prefix and status).
const (
	labelResource = "resource"
	labelType     = "transformation_type"
	labelPrefix   = "transformer_prefix"
	// The resource label is the request's group and resource: "secrets"
	// for the core group's Secrets, on requests and on the watch cache's
	// own reads alike.
	resourceSecrets = "secrets"
	typeToStorage   = "to_storage"
	typeFromStorage = "from_storage"
)

// MaxBytes bounds the exposition Parse reads.
const MaxBytes = 256 << 20

// maxBytes is MaxBytes, lowered by tests.
var maxBytes int64 = MaxBytes

// Parse reads a Prometheus text exposition of kube-apiserver's /metrics
// and decides what it says about Secrets at rest. An error means the text
// could not be read or parsed; absent series are no error, but facts
// (see Status).
func Parse(r io.Reader) (Status, error) {
	kept, err := keepFamilies(r)
	if err != nil {
		return Status{}, err
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(kept))
	if err != nil {
		return Status{}, err
	}
	return decide(factsOf(fams)), nil
}

// keepFamilies returns the lines of the families Parse reads, their HELP
// and TYPE lines included, in order.
func keepFamilies(r io.Reader) ([]byte, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var out bytes.Buffer
	var read int64
	keep, midLine := false, false
	for {
		chunk, err := br.ReadSlice('\n')
		read += int64(len(chunk))
		if read > maxBytes {
			return nil, fmt.Errorf("the exposition is larger than %d bytes", maxBytes)
		}
		if !midLine {
			// A line longer than the buffer arrives in pieces; its name
			// is in the first.
			keep = wanted(lineName(chunk))
		}
		if keep {
			out.Write(chunk)
		}
		midLine = errors.Is(err, bufio.ErrBufferFull)
		switch {
		case err == nil || midLine:
		case errors.Is(err, io.EOF):
			// The parser wants every line ended, the last one too.
			if out.Len() > 0 && !bytes.HasSuffix(out.Bytes(), []byte("\n")) {
				out.WriteByte('\n')
			}
			return out.Bytes(), nil
		default:
			return nil, err
		}
	}
}

func wanted(name string) bool {
	return name == familyOperations || name == familyConfigInfo || name == familyBuildInfo
}

// lineName is the metric name a line of the text format is about: the
// sample's name, or the name of a HELP or TYPE comment; "" for other
// comments and blank lines.
func lineName(line []byte) string {
	line = bytes.TrimLeft(line, " \t")
	if rest, ok := bytes.CutPrefix(line, []byte("#")); ok {
		fields := bytes.Fields(rest)
		if len(fields) >= 2 && (string(fields[0]) == "HELP" || string(fields[0]) == "TYPE") {
			return string(fields[1])
		}
		return ""
	}
	if i := bytes.IndexAny(line, "{ \t\r\n"); i >= 0 {
		line = line[:i]
	}
	return string(line)
}

func factsOf(fams map[string]*dto.MetricFamily) facts {
	f := facts{writes: map[string]float64{}, reads: map[string]float64{}}
	if fam := fams[familyConfigInfo]; fam != nil && len(fam.GetMetric()) > 0 {
		f.configInfo = true
	}
	if fam := fams[familyBuildInfo]; fam != nil && len(fam.GetMetric()) > 0 {
		l := labels(fam.GetMetric()[0])
		f.version = l["git_version"]
		f.minor = minorOf(l["major"], l["minor"])
	}
	for _, m := range fams[familyOperations].GetMetric() {
		l := labels(m)
		if l[labelResource] != resourceSecrets {
			continue
		}
		f.transformed = true
		provider, ok := providerOf(l[labelPrefix])
		v := value(m)
		if !ok || v <= 0 {
			continue
		}
		switch l[labelType] {
		case typeToStorage:
			if provider != Unknown {
				f.writes[provider] += v
			}
		case typeFromStorage:
			if provider == Unknown {
				f.unreadable += v
			} else {
				f.reads[provider] += v
			}
		}
	}
	return f
}

func labels(m *dto.Metric) map[string]string {
	out := make(map[string]string, len(m.GetLabel()))
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// value is a counter's value; a family without a TYPE line parses as
// untyped.
func value(m *dto.Metric) float64 {
	switch {
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	case m.GetUntyped() != nil:
		return m.GetUntyped().GetValue()
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	}
	return 0
}
