package engine

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/thauth/thauth"
)

// subj returns a subject with n assignments.
func subj(id string, n int) *thauth.SubjectGrants {
	sg := &thauth.SubjectGrants{Subject: thauth.Subject{SubjectID: id}}
	for range n {
		sg.Assignments = append(sg.Assignments, thauth.Assignment{RoleID: fmt.Sprint(n)})
	}
	return sg
}

// TestIndexCopyOnWrite applies random puts and removes through editors and checks, against a
// plain map, that every version of the index keeps its own contents: editing never changes an
// index that was already published.
func TestIndexCopyOnWrite(t *testing.T) {
	for _, initial := range []int{0, 5, 5000} {
		t.Run(fmt.Sprint(initial), func(t *testing.T) { testIndexCopyOnWrite(t, initial) })
	}
}

func testIndexCopyOnWrite(t *testing.T, initial int) {
	r := rand.New(rand.NewPCG(3, uint64(initial)))
	b := newIndexBuilder()
	model := map[string]int{}
	for i := range initial {
		id := fmt.Sprintf("s%d", i)
		b.add(subj(id, 1))
		model[id] = 1
	}
	idx, err := b.done()
	if err != nil {
		t.Fatal(err)
	}
	type version struct {
		idx   subjectIndex
		model map[string]int
	}
	versions := []version{{idx, clone(model)}}
	for v := range 30 {
		ed := newEditor(idx)
		for range r.IntN(200) + 1 {
			id := fmt.Sprintf("s%d", r.IntN(initial+1000))
			if r.IntN(3) == 0 {
				ed.remove(id)
				delete(model, id)
			} else {
				n := v + 2
				ed.put(compileSubject(subj(id, n), nil))
				model[id] = n
			}
		}
		idx = ed.done()
		versions = append(versions, version{idx, clone(model)})
	}
	for vi, v := range versions {
		if v.idx.Len() != len(v.model) {
			t.Fatalf("version %d: Len %d, want %d", vi, v.idx.Len(), len(v.model))
		}
		for i := range initial + 1000 {
			id := fmt.Sprintf("s%d", i)
			got := v.idx.get(id)
			want, ok := v.model[id]
			switch {
			case !ok && got != nil:
				t.Fatalf("version %d: %s present, want absent", vi, id)
			case ok && (got == nil || len(got.assigns()) != want):
				t.Fatalf("version %d: %s = %+v, want %d grants", vi, id, got, want)
			}
		}
	}
}

func clone(m map[string]int) map[string]int {
	c := make(map[string]int, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func TestCompileRejectsDuplicates(t *testing.T) {
	f := thauth.Feature{ID: "f1", Name: "docs", Actions: []thauth.Action{{ID: "a1", Name: "read"}}}
	tests := map[string]struct {
		cfg      *thauth.Config
		subjects []*thauth.SubjectGrants
	}{
		"feature name": {cfg: &thauth.Config{Features: []thauth.Feature{f, {ID: "f2", Name: "docs"}}}},
		"action name": {cfg: &thauth.Config{Features: []thauth.Feature{{ID: "f1", Name: "docs", Actions: []thauth.Action{
			{ID: "a1", Name: "read"}, {ID: "a2", Name: "read"}}}}}},
		"role name": {cfg: &thauth.Config{Roles: []thauth.Role{{ID: "r1", Name: "x"}, {ID: "r2", Name: "x"}}}},
		"role id":   {cfg: &thauth.Config{Roles: []thauth.Role{{ID: "r1", Name: "x"}, {ID: "r1", Name: "y"}}}},
		"subject id": {cfg: &thauth.Config{}, subjects: []*thauth.SubjectGrants{
			{Subject: thauth.Subject{SubjectID: "a"}}, {Subject: thauth.Subject{SubjectID: "a"}}}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := Compile(thauth.Project{}, tt.cfg, tt.subjects); thauth.ErrorCodeOf(err) != thauth.EInvalid {
				t.Fatalf("Compile err = %v, want invalid", err)
			}
		})
	}
}

// TestCompileDoesNotRetainInput changes the input after Compile: the snapshot must not see it.
func TestCompileDoesNotRetainInput(t *testing.T) {
	cfg := &thauth.Config{
		Features: []thauth.Feature{{ID: "f", Name: "docs", Actions: []thauth.Action{{ID: "a", Name: "read"}}}},
		Roles:    []thauth.Role{{ID: "r", Name: "reader", Permissions: []thauth.Permission{{FeatureID: "f", ActionID: "a"}}}},
	}
	subjects := []*thauth.SubjectGrants{{Subject: thauth.Subject{SubjectID: "u"}, Assignments: []thauth.Assignment{{RoleID: "r"}}}}
	s, err := Compile(thauth.Project{ID: "p"}, cfg, subjects)
	if err != nil {
		t.Fatal(err)
	}
	version := s.Version()
	cfg.Roles[0].Name = "changed"
	cfg.Roles[0].Permissions[0].ActionID = "x"
	cfg.Features[0].Actions[0].Name = "write"
	subjects[0].Assignments[0].RoleID = "nope"
	if s.Version() != version || s.Config().Version() != version || s.Config().Roles[0].Name != "reader" {
		t.Fatal("snapshot config changed with its input")
	}
	d := s.Check(&thauth.CheckRequest{Subject: "u", Feature: "docs", Action: "read"}, testNow)
	if !d.Allowed || d.Reason != "role:reader" {
		t.Fatalf("decision changed with input: %+v", d)
	}
	if s.Config().Roles[0].Permissions[0].FeatureName != "docs" || s.Config().Roles[0].Permissions[0].ActionName != "read" {
		t.Fatalf("permission names not filled in: %+v", s.Config().Roles[0].Permissions[0])
	}
}

// TestLeafTable drives one leaf table directly with clustered hashes (many subjects sharing a
// home slot, runs wrapping around the end of the table, equal hashes with different ids) and
// checks every lookup against a map after every insert and delete.
func TestLeafTable(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var l leaf
	ids := make([]string, 300)
	hashes := make([]uint64, len(ids))
	for i := range ids {
		ids[i] = fmt.Sprintf("id%d", i)
		// Few distinct homes, at the end of the table (runs wrap around), and some full-hash
		// collisions.
		hashes[i] = uint64(0xFFFFFFF8+i%7)<<32 | uint64(i%3)
	}
	present := make([]bool, len(ids))
	n := 0
	verify := func() {
		t.Helper()
		if l.n != n {
			t.Fatalf("n = %d, want %d", l.n, n)
		}
		for i, id := range ids {
			got := false
			if len(l.slots) > 0 {
				_, got = l.lookup(hashes[i], id)
			}
			if got != present[i] {
				t.Fatalf("lookup(%s) = %v, want %v", id, got, present[i])
			}
		}
	}
	for range 2000 {
		k := r.IntN(len(ids))
		switch {
		case present[k] && r.IntN(2) == 0:
			i, found := l.lookup(hashes[k], ids[k])
			if !found {
				t.Fatalf("%s not found", ids[k])
			}
			l.delete(i)
			present[k] = false
			n--
		case !present[k]:
			s := newSubjectC(ids[k])
			s.hash = hashes[k]
			l.insert(s)
			present[k] = true
			n++
		}
		verify()
	}
}
