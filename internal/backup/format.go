package backup

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/thauth/thauth"
)

// formatName is the value of the header's "format" field.
const formatName = "thauth-backup"

// maxLine bounds one line of the plaintext (a row), so that a forged file cannot make
// Restore buffer without limit.
const maxLine = 64 << 20

// header is the first line of the plaintext.
type header struct {
	Format        string        `json:"format"`
	FormatVersion int           `json:"format_version"`
	SchemaVersion int           `json:"schema_version"`
	CreatedAt     string        `json:"created_at"` // RFC 3339, UTC
	ThauthVersion string        `json:"thauth_version"`
	Tables        []tableSchema `json:"tables"`
}

type tableSchema struct {
	Name    string         `json:"name"`
	Columns []columnSchema `json:"columns"`
}

type columnSchema struct {
	Name     string            `json:"name"`
	Type     thauth.ColumnType `json:"type"`
	Nullable bool              `json:"nullable,omitempty"`
}

// control is a line of the plaintext that is not a row: a section (Table set) or the
// trailer (End set).
type control struct {
	Table  *string      `json:"table,omitempty"`
	End    bool         `json:"end,omitempty"`
	Rows   []TableCount `json:"rows,omitempty"`
	SHA256 string       `json:"sha256,omitempty"`
}

// trailer is the last line of the plaintext.
type trailer struct {
	End    bool         `json:"end"`
	Rows   []TableCount `json:"rows"`
	SHA256 string       `json:"sha256"`
}

func schemaOf(tables []thauth.BackupTable) []tableSchema {
	out := make([]tableSchema, len(tables))
	for i, t := range tables {
		out[i].Name = t.Name
		for _, c := range t.Columns {
			out[i].Columns = append(out[i].Columns, columnSchema{Name: c.Name, Type: c.Type, Nullable: c.Nullable})
		}
	}
	return out
}

// backupTable turns a table of a header back into the description rows are checked against.
func (t tableSchema) backupTable() thauth.BackupTable {
	bt := thauth.BackupTable{Name: t.Name}
	for _, c := range t.Columns {
		bt.Columns = append(bt.Columns, thauth.BackupColumn{Name: c.Name, Type: c.Type, Nullable: c.Nullable})
	}
	return bt
}

// encoder writes the lines of the plaintext.
type encoder struct {
	enc *json.Encoder
}

func newEncoder(w io.Writer) *encoder {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return &encoder{enc: enc}
}

// value writes v as one line.
func (e *encoder) value(v any) error { return e.enc.Encode(v) }

func (e *encoder) header(info *Info, tables []thauth.BackupTable) error {
	return e.value(header{
		Format:        formatName,
		FormatVersion: info.FormatVersion,
		SchemaVersion: info.SchemaVersion,
		CreatedAt:     info.CreatedAt.Format(time.RFC3339Nano),
		ThauthVersion: info.ThauthVersion,
		Tables:        schemaOf(tables),
	})
}

func (e *encoder) section(table string) error {
	return e.value(control{Table: &table})
}

// row writes one row, which must have passed t.CheckRow.
func (e *encoder) row(t thauth.BackupTable, row []any) error {
	out := make([]any, len(row))
	for i, v := range row {
		switch v := v.(type) {
		case nil, string, int64:
			out[i] = v
		case []byte:
			out[i] = base64.StdEncoding.EncodeToString(v)
		case time.Time:
			out[i] = v.UnixMicro()
		default:
			return thauth.Internal(nil, "table %s: column %s: cannot encode a %T", t.Name, t.Columns[i].Name, v)
		}
	}
	return e.value(out)
}

// lineReader reads the lines of the plaintext.
type lineReader struct {
	br *bufio.Reader
	n  int // lines read
}

// next returns the next line, with its "\n". At the end of the input it returns io.EOF;
// a last line without "\n", or longer than maxLine, is ErrDamaged; read errors are returned
// as they are.
func (r *lineReader) next() ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.br.ReadSlice('\n')
		if len(line)+len(chunk) > maxLine {
			return nil, damaged(nil, "line %d is longer than %d bytes", r.n+1, maxLine)
		}
		switch {
		case err == nil:
			r.n++
			if line == nil {
				return chunk, nil // valid until the next read
			}
			return append(line, chunk...), nil
		case errors.Is(err, bufio.ErrBufferFull):
			line = append(line, chunk...)
		case errors.Is(err, io.EOF):
			if len(line)+len(chunk) == 0 {
				return nil, io.EOF
			}
			return nil, damaged(nil, "the backup ends in the middle of line %d", r.n+1)
		default:
			return nil, err
		}
	}
}

// decodeRow decodes a row line of table t.
func decodeRow(t thauth.BackupTable, line []byte) ([]any, error) {
	var raw []json.RawMessage
	if err := json.Unmarshal(line, &raw); err != nil {
		return nil, err
	}
	if len(raw) != len(t.Columns) {
		return nil, fmt.Errorf("%d values, want %d", len(raw), len(t.Columns))
	}
	row := make([]any, len(raw))
	for i, c := range t.Columns {
		v := raw[i]
		if bytes.Equal(v, []byte("null")) {
			if !c.Nullable {
				return nil, fmt.Errorf("column %s is null", c.Name)
			}
			continue
		}
		var err error
		switch c.Type {
		case thauth.ColumnText:
			var s string
			if err = unmarshalKind(v, '"', &s); err == nil {
				row[i] = s
			}
		case thauth.ColumnInt:
			var n int64
			if err = unmarshalKind(v, '0', &n); err == nil {
				row[i] = n
			}
		case thauth.ColumnBytes:
			var s string
			if err = unmarshalKind(v, '"', &s); err == nil {
				var b []byte
				if b, err = base64.StdEncoding.Strict().DecodeString(s); err == nil {
					row[i] = b
				}
			}
		case thauth.ColumnTime:
			var us int64
			if err = unmarshalKind(v, '0', &us); err == nil {
				row[i] = time.UnixMicro(us).UTC()
			}
		default:
			err = fmt.Errorf("unknown type %q", c.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("column %s: %v", c.Name, err)
		}
	}
	return row, nil
}

// unmarshalKind decodes v into dst if v is a JSON string (kind '"') or number (kind '0').
func unmarshalKind(v json.RawMessage, kind byte, dst any) error {
	ok := len(v) > 0 && (v[0] == kind || kind == '0' && (v[0] == '-' || '0' <= v[0] && v[0] <= '9'))
	if !ok {
		return fmt.Errorf("unexpected value %.20s", v)
	}
	return json.Unmarshal(v, dst)
}

// damaged returns an ErrDamaged error with a message; cause (may be nil) is kept for logs.
func damaged(cause error, format string, args ...any) error {
	err := ErrDamaged
	if cause != nil {
		err = fmt.Errorf("%w: %w", ErrDamaged, cause)
	}
	return &thauth.Error{
		Code:    thauth.EInvalid,
		Message: "the backup is damaged, truncated or was tampered with: " + fmt.Sprintf(format, args...),
		Err:     err,
	}
}
