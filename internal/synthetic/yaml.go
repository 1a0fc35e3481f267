package synthetic

import (
	"bufio"
	"fmt"
	"io"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
)

// WriteYAML writes objs as one multi-document YAML stream, one object per
// document in the order given, as `kubectl apply -f` and keyhole's
// manifest source read it. Objects must carry their TypeMeta, as
// Generate's do.
func WriteYAML(w io.Writer, objs []runtime.Object) error {
	bw := bufio.NewWriter(w)
	for i, o := range objs {
		doc, err := yaml.Marshal(o)
		if err != nil {
			return fmt.Errorf("object %d (%s): %w", i+1, describe(o), err)
		}
		if i > 0 {
			if _, err := bw.WriteString("---\n"); err != nil {
				return err
			}
		}
		if _, err := bw.Write(doc); err != nil {
			return err
		}
	}
	return bw.Flush()
}

func describe(o runtime.Object) string {
	kind := o.GetObjectKind().GroupVersionKind().Kind
	m, err := meta.Accessor(o)
	if err != nil {
		return kind
	}
	if m.GetNamespace() == "" {
		return kind + "/" + m.GetName()
	}
	return kind + "/" + m.GetNamespace() + "/" + m.GetName()
}
