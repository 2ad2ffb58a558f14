package gen

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A root package with the shapes the generator must handle: embedded interfaces, grouped
// and unnamed parameters, names the generated body uses, variadic and function parameters,
// several results, a method without a context.
const fakeRoot = `package thauth

import (
	"context"
	"time"
)

type Thing struct{}

type Inner interface {
	Get(ctx context.Context, a, b string) (*Thing, error)
}

type Data interface {
	Inner
	Scan(context.Context, string, func(*Thing) error) error
	Many(ctx context.Context, w, c, err string, r0 int, xs ...time.Duration) (map[string][]Thing, bool, error)
	NoErr(ctx context.Context) int
}

type Store interface {
	Data
	Tx(ctx context.Context, fn func(ctx context.Context, tx Data) error) error
	Close() error
}

type SubjectBulkWriter interface {
	WriteSubjects(ctx context.Context, projectID string, now time.Time) error
}
`

func TestGenerateShapes(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "root.go"), []byte(fakeRoot), 0o644); err != nil {
		t.Fatal(err)
	}
	src, err := Generate(dir)
	if err != nil {
		t.Fatal(err)
	}
	s := string(src)
	for _, want := range []string{
		"func (w *data) Get(ctx context.Context, a string, b string) (*thauth.Thing, error) {",
		"r0, err := w.d.Get(ctx, a, b)",
		"func (w *data) Scan(ctx context.Context, p1 string, p2 func(*thauth.Thing) error) error {",
		"func (w *data) Many(ctx context.Context, wArg string, cArg string, errArg string, r0Arg int, xs ...time.Duration) (map[string][]thauth.Thing, bool, error) {",
		"r0, r1, err := w.d.Many(ctx, wArg, cArg, errArg, r0Arg, xs...)",
		"r0 := w.d.NoErr(ctx)\n\tw.o.end(opNoErr, c, nil)",
		"func (w *store) Close() error {\n\treturn w.s.Close()\n}",
		"func (w *bulkData) WriteSubjects(",
		"opTx\n",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("generated source lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "func (w *store) Tx(") {
		t.Error("Tx is generated; it is written by hand (it decorates the transaction's Data)")
	}
	if strings.Contains(s, "opClose") {
		t.Error("Close (no context) became an op")
	}
}

func TestGenerateErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Generate(dir); err == nil {
		t.Error("no error for a directory without the package")
	}
	bad := strings.Replace(fakeRoot, "type SubjectBulkWriter interface", "type NotIt interface", 1)
	if err := os.WriteFile(filepath.Join(dir, "root.go"), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Generate(dir); err == nil || !strings.Contains(err.Error(), "SubjectBulkWriter") {
		t.Errorf("missing interface: %v", err)
	}
}
