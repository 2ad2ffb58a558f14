package thauth

import (
	"testing"
	"testing/fstest"
)

func TestReadMigrations(t *testing.T) {
	f := func(names ...string) fstest.MapFS {
		m := fstest.MapFS{}
		for _, n := range names {
			m["m/"+n] = &fstest.MapFile{Data: []byte("-- " + n)}
		}
		return m
	}
	ms, err := ReadMigrations(f("0002_b.sql", "0001_a.sql"), "m")
	if err != nil || len(ms) != 2 || ms[0].Version != 1 || ms[1].Name != "0002_b.sql" || ms[1].SQL != "-- 0002_b.sql" {
		t.Fatalf("ReadMigrations = %+v, %v", ms, err)
	}
	for name, bad := range map[string]fstest.MapFS{
		"gap":        f("0001_a.sql", "0003_c.sql"),
		"not sql":    f("0001_a.txt"),
		"no number":  f("init.sql"),
		"duplicated": f("0001_a.sql", "0001_b.sql"),
	} {
		if _, err := ReadMigrations(bad, "m"); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
