package enginetest

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestWorkloadDeterministic(t *testing.T) {
	w := Default()
	w.Subjects = 50
	if diff := cmp.Diff(w.Config(), w.Config()); diff != "" {
		t.Fatalf("config differs between calls:\n%s", diff)
	}
	if diff := cmp.Diff(w.AllSubjects(), w.AllSubjects()); diff != "" {
		t.Fatalf("subjects differ between calls:\n%s", diff)
	}
	if diff := cmp.Diff(w.Requests(100, 1), w.Requests(100, 1)); diff != "" {
		t.Fatalf("requests differ between calls:\n%s", diff)
	}
	w2 := w
	w2.Seed++
	if cmp.Equal(w.AllSubjects(), w2.AllSubjects()) {
		t.Fatal("another seed gave the same subjects")
	}
	if got := len(w.AllSubjects()); got != 50 || w.Grants() != 50*7 {
		t.Fatalf("%d subjects, %d grants", got, w.Grants())
	}
	cfg := w.Config()
	if len(cfg.Features) != 100 || len(cfg.Features[0].Actions) != 5 || len(cfg.Roles) != 200 {
		t.Fatalf("config shape: %d features, %d roles", len(cfg.Features), len(cfg.Roles))
	}
}
