package record

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Encode is the record's snapshot form.
func (r Record) Encode() ([]byte, error) { return json.Marshal(r) }

// DecodeRecord reads a snapshot, refusing unknown fields.
func DecodeRecord(b []byte) (Record, error) {
	var r Record
	if err := strictUnmarshal(b, &r); err != nil {
		return Record{}, fmt.Errorf("decode cluster record: %w", err)
	}
	return r, nil
}

func strictUnmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("trailing data after JSON value")
	}
	return nil
}
