package backup

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/thauth/thauth"
)

// Restore decrypts the backup read from r with one of identities and loads it into dst,
// which must be empty and migrated to the backup's schema version. Every row is read,
// checked and inserted in one transaction of dst that commits only once the whole file has
// been read and found intact — the age stream authenticated to its last chunk, the trailer's
// row counts and SHA-256 matching — so a damaged, truncated or tampered file, or any other
// failure, leaves dst as it was. Ids, hashes, sealed values, data keys, revisions and times
// are restored exactly. It returns what the backup held.
//
// Errors are *thauth.Error: EUnauthenticated (ErrNoIdentity) when no identity matches;
// EInvalid (ErrDamaged) for a file that is not a Thauth backup or is damaged; EConflict
// (ErrIncompatible) for a format version this program does not know or a schema version that
// differs from dst's; EConflict from dst when it is not empty; EInvalid from dst for rows
// that do not fit; EUnavailable when ctx ends or the database is unavailable; EInternal when
// r cannot be read.
func Restore(ctx context.Context, r io.Reader, identities []age.Identity, dst thauth.TableImporter) (*Info, error) {
	d, err := openBackup(r, identities)
	if err != nil {
		return nil, err
	}
	cur, _, err := dst.SchemaVersion(ctx)
	if err != nil {
		return nil, err
	}
	if cur != d.info.SchemaVersion {
		return nil, &thauth.Error{
			Code: thauth.EConflict,
			Message: fmt.Sprintf("the backup has schema version %d (written by Thauth %s) but the database is at schema version %d: restore into a new database migrated by the Thauth version that wrote the backup, then upgrade",
				d.info.SchemaVersion, d.info.ThauthVersion, cur),
			Err: ErrIncompatible,
		}
	}
	if err := d.matchesThisProgram(); err != nil {
		return nil, err
	}
	if err := dst.ImportTables(ctx, func(insert func(string, []any) error) error {
		return d.body(ctx, insert)
	}); err != nil {
		return nil, err
	}
	return d.info, nil
}

// Verify decrypts the backup read from r with one of identities and checks all of it, as
// Restore does, without writing anywhere. It accepts backups of any schema version of a
// known format version (each backup describes its own tables). Errors are those of Restore
// that do not concern a target database.
func Verify(ctx context.Context, r io.Reader, identities []age.Identity) (*Info, error) {
	d, err := openBackup(r, identities)
	if err != nil {
		return nil, err
	}
	if err := d.body(ctx, func(string, []any) error { return nil }); err != nil {
		return nil, err
	}
	return d.info, nil
}

// decoder reads one backup.
type decoder struct {
	src    *errReader
	lines  *lineReader
	h      hash.Hash
	hdr    header
	tables []thauth.BackupTable // as the header describes them
	info   *Info
}

// openBackup decrypts the age header and reads the backup's header.
func openBackup(r io.Reader, identities []age.Identity) (*decoder, error) {
	if len(identities) == 0 {
		return nil, thauth.Errorf(thauth.EInvalid, "restoring a backup needs an identity (the age secret key, AGE-SECRET-KEY-…) or the passphrase it was encrypted with")
	}
	src := &errReader{r: r}
	ar, err := age.Decrypt(src, identities...)
	if err != nil {
		var nomatch *age.NoIdentityMatchError
		switch {
		case src.err != nil:
			return nil, thauth.Internal(src.err, "cannot read the backup")
		case errors.As(err, &nomatch):
			return nil, &thauth.Error{
				Code:    thauth.EUnauthenticated,
				Message: "none of the given identities can decrypt this backup: it was encrypted to other keys (or with a passphrase instead of a key, or the other way round), or its header is damaged",
				Err:     fmt.Errorf("%w: %w", ErrNoIdentity, err),
			}
		}
		return nil, damaged(err, "not an age-encrypted Thauth backup, or its header is damaged (%v)", err)
	}
	d := &decoder{src: src, lines: &lineReader{br: bufio.NewReaderSize(ar, 256<<10)}, h: sha256.New()}
	line, err := d.next()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, damaged(nil, "the backup is empty")
		}
		return nil, err
	}
	if err := d.parseHeader(line); err != nil {
		return nil, err
	}
	d.h.Write(line)
	return d, nil
}

// next reads the next line, turning read and decryption failures into errors.
func (d *decoder) next() ([]byte, error) {
	line, err := d.lines.next()
	switch {
	case err == nil, errors.Is(err, io.EOF):
		return line, err
	case d.src.err != nil:
		return nil, thauth.Internal(d.src.err, "cannot read the backup")
	case errors.As(err, new(*thauth.Error)):
		return nil, err
	}
	// age's STREAM: a chunk that fails authentication, a missing last chunk, trailing data.
	return nil, damaged(err, "%v", err)
}

func (d *decoder) parseHeader(line []byte) error {
	var probe struct {
		Format        string `json:"format"`
		FormatVersion int    `json:"format_version"`
	}
	if err := json.Unmarshal(line, &probe); err != nil || probe.Format != formatName {
		return damaged(err, "it does not start with a Thauth backup header")
	}
	if probe.FormatVersion != FormatVersion {
		return &thauth.Error{
			Code:    thauth.EConflict,
			Message: fmt.Sprintf("the backup has format version %d; this Thauth reads format version %d (use the Thauth version that wrote it)", probe.FormatVersion, FormatVersion),
			Err:     ErrIncompatible,
		}
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d.hdr); err != nil {
		return damaged(err, "malformed header: %v", err)
	}
	created, err := time.Parse(time.RFC3339Nano, d.hdr.CreatedAt)
	if err != nil {
		return damaged(err, "malformed header: created_at: %v", err)
	}
	seen := map[string]bool{}
	for _, t := range d.hdr.Tables {
		if t.Name == "" || seen[t.Name] || len(t.Columns) == 0 {
			return damaged(nil, "malformed header: table %q", t.Name)
		}
		seen[t.Name] = true
		for _, c := range t.Columns {
			switch c.Type {
			case thauth.ColumnText, thauth.ColumnInt, thauth.ColumnBytes, thauth.ColumnTime:
			default:
				return damaged(nil, "malformed header: table %s: column %s has unknown type %q", t.Name, c.Name, c.Type)
			}
		}
		d.tables = append(d.tables, t.backupTable())
	}
	d.info = &Info{
		FormatVersion: d.hdr.FormatVersion,
		SchemaVersion: d.hdr.SchemaVersion,
		CreatedAt:     created.UTC(),
		ThauthVersion: d.hdr.ThauthVersion,
	}
	return nil
}

// matchesThisProgram checks that the backup's tables are exactly the ones this program
// stores, so that every row lands in a column of the same meaning.
func (d *decoder) matchesThisProgram() error {
	want := schemaOf(thauth.BackupTables())
	if !slices.EqualFunc(want, d.hdr.Tables, func(a, b tableSchema) bool {
		return a.Name == b.Name && slices.Equal(a.Columns, b.Columns)
	}) {
		return &thauth.Error{
			Code:    thauth.EConflict,
			Message: fmt.Sprintf("the backup's tables (schema version %d, Thauth %s) differ from this Thauth's: restore with the Thauth version that wrote it", d.info.SchemaVersion, d.info.ThauthVersion),
			Err:     ErrIncompatible,
		}
	}
	return nil
}

// body reads every section, row and the trailer, calling insert for each row, and checks
// the trailer and the end of the stream. It returns insert's errors as they are.
func (d *decoder) body(ctx context.Context, insert func(table string, row []any) error) error {
	counts := make([]int64, len(d.tables))
	cur := -1 // index of the current section
	var rows int64
	for {
		line, err := d.next()
		if errors.Is(err, io.EOF) {
			return damaged(nil, "it ends before its trailer (after %d rows)", rows)
		}
		if err != nil {
			return err
		}
		if len(line) > 0 && line[0] == '[' {
			if cur < 0 {
				return damaged(nil, "line %d: a row before the first table", d.lines.n)
			}
			t := d.tables[cur]
			row, err := decodeRow(t, line)
			if err != nil {
				return damaged(err, "line %d: table %s: bad row: %v", d.lines.n, t.Name, err)
			}
			if err := t.CheckRow(row); err != nil {
				return damaged(err, "line %d: %s", d.lines.n, thauth.ErrorMessage(err))
			}
			d.h.Write(line)
			if err := insert(t.Name, row); err != nil {
				return err
			}
			counts[cur]++
			if rows++; rows%4096 == 0 {
				if err := ctx.Err(); err != nil {
					return &thauth.Error{Code: thauth.EUnavailable, Message: "restore canceled", Err: err}
				}
			}
			continue
		}
		var c control
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil {
			return damaged(err, "line %d: %v", d.lines.n, err)
		}
		switch {
		case c.Table != nil && !c.End:
			if cur+1 >= len(d.tables) || d.tables[cur+1].Name != *c.Table {
				return damaged(nil, "line %d: table %q out of order", d.lines.n, *c.Table)
			}
			cur++
			d.h.Write(line)
		case c.End && c.Table == nil:
			return d.finish(c, counts)
		default:
			return damaged(nil, "line %d: unexpected line", d.lines.n)
		}
	}
}

// finish checks the trailer c against what was read and that nothing follows it.
func (d *decoder) finish(c control, counts []int64) error {
	var want []TableCount
	for i, t := range d.tables {
		want = append(want, TableCount{Table: t.Name, Rows: counts[i]})
	}
	if !slices.Equal(c.Rows, want) {
		return damaged(nil, "the trailer's row counts (%s) differ from the rows read (%s)", countsString(c.Rows), countsString(want))
	}
	sum, err := hex.DecodeString(c.SHA256)
	if err != nil || subtle.ConstantTimeCompare(sum, d.h.Sum(nil)) != 1 {
		return damaged(err, "the content does not match the trailer's SHA-256")
	}
	// Reading on to the end makes age authenticate the last chunk and refuse trailing data.
	if _, err := d.next(); !errors.Is(err, io.EOF) {
		if err != nil {
			return err
		}
		return damaged(nil, "data follows the trailer")
	}
	d.info.Tables = want
	return nil
}

func countsString(cs []TableCount) string {
	parts := make([]string, len(cs))
	for i, c := range cs {
		parts[i] = fmt.Sprintf("%s %d", c.Table, c.Rows)
	}
	return strings.Join(parts, ", ")
}

// errReader remembers the first error of r other than io.EOF, to tell a failed read from
// damaged content.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF && e.err == nil {
		e.err = err
	}
	return n, err
}
