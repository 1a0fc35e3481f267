package inventory

import "encoding/json"

// parseFieldSet decodes a managedFields FieldsV1 document. Only the top
// level and the key names under f:data are read, so a plain JSON decode is
// enough; FieldsV1 never holds values, only field paths.
func parseFieldSet(raw []byte) (map[string]any, error) {
	var set map[string]any
	if err := json.Unmarshal(raw, &set); err != nil {
		return nil, err
	}
	return set, nil
}
