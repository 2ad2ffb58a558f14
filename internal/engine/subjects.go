package engine

import (
	"hash/maphash"
	"math"
	"math/bits"
	"slices"
	"strings"
	"time"

	"github.com/thauth/thauth"
)

// subjectC is one subject's grants, compiled. Grants refer to roles, features and actions by
// id (interned), never to a compiled configuration, so a configuration change does not touch
// subjects: a grant naming an id the configuration no longer has simply never matches.
//
// Subjects are stored by value in the index leaves, and the layout is chosen for the number
// of memory accesses a check makes on a cold cache (with a million subjects every access is a
// cache and TLB miss): ids of up to idInline bytes are stored inline, so that finding the
// subject needs no extra access, and all grants live in one array, overrides first, with
// their tenant and pattern as plain strings.
type subjectC struct {
	grants     []grantC
	hash       uint64 // of the id, with the index's seed (set by the index)
	idLong     string // the id, when longer than idInline
	nOverrides int32
	idLen      int32          // < 0: an empty slot of a leaf table
	idShort    [idInline]byte // the id, when idLen <= idInline
}

// idInline is the longest id stored inline: UUIDs and most customer ids fit, and the entry
// stays at 104 bytes.
const idInline = 48

func newSubjectC(id string) subjectC {
	s := subjectC{idLen: int32(len(id))}
	if len(id) <= idInline {
		copy(s.idShort[:], id)
	} else {
		s.idLong = strings.Clone(id)
	}
	return s
}

// is reports whether the subject's id is id.
func (s *subjectC) is(id string) bool {
	if len(id) != int(s.idLen) {
		return false
	}
	if len(id) <= idInline {
		return string(s.idShort[:len(id)]) == id
	}
	return s.idLong == id
}

// id returns the subject's id (allocating for inline ids: not for the decision path).
func (s *subjectC) id() string {
	if int(s.idLen) <= idInline {
		return string(s.idShort[:s.idLen])
	}
	return s.idLong
}

func (s *subjectC) overrides() []grantC { return s.grants[:s.nOverrides] }
func (s *subjectC) assigns() []grantC   { return s.grants[s.nOverrides:] }

// grantC is an override or a role assignment.
type grantC struct {
	ref     handle // assignment: role id; override: action id
	feature handle // override: feature id
	pattern string // override: resource pattern ("" for none)
	tenant  string // "" for global
	// Validity bounds in Unix microseconds (the precision stores keep, see design.md);
	// noFrom and noUntil stand for an absent bound.
	from, until int64
	deny        bool // override effect
}

const (
	noFrom  = math.MinInt64
	noUntil = math.MaxInt64
)

// active reports whether the grant's window contains now and its tenant is global or tenant.
func (g *grantC) active(now int64, tenant string) bool {
	return g.from <= now && now < g.until && (g.tenant == "" || g.tenant == tenant)
}

func micros(t *time.Time, none int64) int64 {
	if t == nil {
		return none
	}
	return t.UnixMicro()
}

func timeOf(us int64, none int64) *time.Time {
	if us == none {
		return nil
	}
	t := time.UnixMicro(us).UTC()
	return &t
}

// interner deduplicates the tenants and patterns of grants within one build of an index, so
// that a million grants in a thousand tenants hold a thousand copies of the tenant names. It
// lives only as long as the build: nothing accumulates across the life of the process. A nil
// interner copies every string.
type interner map[string]string

func (in interner) str(s string) string {
	if s == "" {
		return ""
	}
	if in == nil {
		return strings.Clone(s)
	}
	if v, ok := in[s]; ok {
		return v
	}
	v := strings.Clone(s)
	in[v] = v
	return v
}

// compileSubject compiles one subject's grants. It copies everything it keeps, so sg may be
// reused by the caller.
func compileSubject(sg *thauth.SubjectGrants, in interner) subjectC {
	s := newSubjectC(sg.Subject.SubjectID)
	s.nOverrides = int32(len(sg.Overrides))
	if n := len(sg.Overrides) + len(sg.Assignments); n > 0 {
		s.grants = make([]grantC, 0, n)
	}
	for _, o := range sg.Overrides {
		s.grants = append(s.grants, grantC{
			ref:     intern(o.ActionID),
			feature: intern(o.FeatureID),
			pattern: in.str(o.Resource),
			tenant:  in.str(o.Tenant),
			from:    micros(o.From, noFrom),
			until:   micros(o.Until, noUntil),
			// Anything that is not an allow is treated as a deny: fail closed.
			deny: o.Effect != thauth.Allow,
		})
	}
	for _, a := range sg.Assignments {
		s.grants = append(s.grants, grantC{
			ref:    intern(a.RoleID),
			tenant: in.str(a.Tenant),
			from:   micros(a.From, noFrom),
			until:  micros(a.Until, noUntil),
		})
	}
	return s
}

// subjectIndex maps subject ids to compiled subjects. It is a persistent (copy-on-write)
// two-level hash trie with up to 256×64 leaves, each leaf a small open-addressing hash table
// that holds its subjects by value. Inner nodes are compressed (a bitmap of the leaves
// present), so a project with a handful of subjects costs little.
//
// The layout is chosen for the number of dependent memory accesses of a lookup, because with
// millions of subjects each one is a cache and TLB miss: the trie's nodes are few and stay
// cached, the slot a lookup lands on holds the hash, the id (inline) and the grants' address,
// so finding a subject costs one miss and reading its grants one more.
//
// Replacing one subject copies one leaf (a few dozen entries) and one inner node, never the
// whole index. Indexes are values; a copy shares every node with the original, and published
// nodes are never modified (see indexEditor).
type subjectIndex struct {
	seed maphash.Seed
	n    int
	top  [hiFan]*innerNode
}

const (
	hiBits = 8
	loBits = 6
	hiFan  = 1 << hiBits
	loFan  = 1 << loBits
)

// innerNode holds the non-empty leaves among its 64 slots: leaves[i] is the leaf of the i-th
// bit set in present.
type innerNode struct {
	present uint64
	leaves  []leaf
}

// leafAt returns the position of slot lo in in.leaves and whether the slot is present.
func (in *innerNode) leafAt(lo int) (int, bool) {
	bit := uint64(1) << lo
	return bits.OnesCount64(in.present & (bit - 1)), in.present&bit != 0
}

// leaf is a hash table with linear probing: a power-of-two number of slots, at most 3/4 full
// (so every probe sequence ends at an empty slot), a subject's home slot taken from its
// hash's high bits.
type leaf struct {
	slots []subjectC
	n     int
}

func newTable(size int) []subjectC {
	t := make([]subjectC, size)
	for i := range t {
		t[i].idLen = -1
	}
	return t
}

// tableSize returns the number of slots for n subjects.
func tableSize(n int) int {
	size := 2
	for size*3 < n*4 || size <= n {
		size *= 2
	}
	return size
}

func home(h uint64, mask uint64) uint64 { return (h >> 32) & mask }

// lookup returns the slot of id (with hash h) and true, or the empty slot where it would go
// and false. The leaf must have slots.
func (l *leaf) lookup(h uint64, id string) (int, bool) {
	mask := uint64(len(l.slots) - 1)
	for i := home(h, mask); ; i = (i + 1) & mask {
		s := &l.slots[i]
		if s.idLen < 0 {
			return int(i), false
		}
		if s.hash == h && s.is(id) {
			return int(i), true
		}
	}
}

// insert puts s (s.hash set) in a leaf known not to hold its id, growing the table if needed.
func (l *leaf) insert(s subjectC) {
	if size := tableSize(l.n + 1); size > len(l.slots) {
		old := l.slots
		l.slots = newTable(size)
		for i := range old {
			if old[i].idLen >= 0 {
				l.place(old[i])
			}
		}
	}
	l.place(s)
	l.n++
}

// place puts s in the first empty slot of its probe sequence.
func (l *leaf) place(s subjectC) {
	mask := uint64(len(l.slots) - 1)
	i := home(s.hash, mask)
	for l.slots[i].idLen >= 0 {
		i = (i + 1) & mask
	}
	l.slots[i] = s
}

// delete empties slot i and shifts later entries of the probe run back, so that lookups
// never stop early at the hole.
func (l *leaf) delete(i int) {
	mask := uint64(len(l.slots) - 1)
	hole := uint64(i)
	for j := (hole + 1) & mask; l.slots[j].idLen >= 0; j = (j + 1) & mask {
		k := home(l.slots[j].hash, mask)
		// The entry at j may move to the hole unless its home lies cyclically in (hole, j].
		if (hole < j && hole < k && k <= j) || (hole > j && (hole < k || k <= j)) {
			continue
		}
		l.slots[hole] = l.slots[j]
		hole = j
	}
	l.slots[hole] = subjectC{idLen: -1}
	l.n--
}

func newSubjectIndex() subjectIndex { return subjectIndex{seed: maphash.MakeSeed()} }

func (x *subjectIndex) hash(id string) uint64 { return maphash.String(x.seed, id) }

// slot returns the inner node and leaf slots of hash h (its low bits; the high bits place it
// in the leaf).
func slot(h uint64) (hi, lo int) { return int(h & (hiFan - 1)), int((h >> hiBits) & (loFan - 1)) }

// get returns the subject id, or nil. The result points into an immutable leaf.
func (x *subjectIndex) get(id string) *subjectC {
	h := x.hash(id)
	hi, lo := slot(h)
	in := x.top[hi]
	if in == nil {
		return nil
	}
	li, ok := in.leafAt(lo)
	if !ok {
		return nil
	}
	l := &in.leaves[li]
	if len(l.slots) == 0 {
		return nil
	}
	if i, ok := l.lookup(h, id); ok {
		return &l.slots[i]
	}
	return nil
}

// Len returns the number of subjects.
func (x *subjectIndex) Len() int { return x.n }

// indexEditor applies a batch of changes to a copy of an index, copying each node it touches
// at most once.
type indexEditor struct {
	x         subjectIndex
	ownInner  [hiFan]bool
	ownLeaves map[int]bool
}

func newEditor(x subjectIndex) *indexEditor {
	return &indexEditor{x: x, ownLeaves: map[int]bool{}}
}

// inner returns the owned, writable inner node of slot hi.
func (ed *indexEditor) inner(hi int) *innerNode {
	if !ed.ownInner[hi] {
		in := new(innerNode)
		if old := ed.x.top[hi]; old != nil {
			in.present = old.present
			in.leaves = slices.Clone(old.leaves)
		}
		ed.x.top[hi] = in
		ed.ownInner[hi] = true
	}
	return ed.x.top[hi]
}

// leaf returns the owned, writable leaf of hash h, creating it if create is set; nil if it
// does not exist and create is not set.
func (ed *indexEditor) leaf(h uint64, create bool) *leaf {
	hi, lo := slot(h)
	if old := ed.x.top[hi]; !create && (old == nil || old.present&(1<<lo) == 0) {
		return nil
	}
	in := ed.inner(hi)
	li, ok := in.leafAt(lo)
	if !ok {
		in.leaves = slices.Insert(in.leaves, li, leaf{})
		in.present |= 1 << lo
	}
	l := &in.leaves[li]
	if k := hi*loFan + lo; !ed.ownLeaves[k] {
		l.slots = slices.Clone(l.slots)
		ed.ownLeaves[k] = true
	}
	return l
}

// put adds or replaces s.
func (ed *indexEditor) put(s subjectC) {
	id := s.id()
	s.hash = ed.x.hash(id)
	l := ed.leaf(s.hash, true)
	if len(l.slots) > 0 {
		if i, found := l.lookup(s.hash, id); found {
			l.slots[i] = s
			return
		}
	}
	l.insert(s)
	ed.x.n++
}

// remove deletes the subject id if present. An emptied leaf stays (empty) until the next
// full build; it costs a few words.
func (ed *indexEditor) remove(id string) {
	h := ed.x.hash(id)
	l := ed.leaf(h, false)
	if l == nil || len(l.slots) == 0 {
		return
	}
	if i, found := l.lookup(h, id); found {
		l.delete(i)
		ed.x.n--
	}
}

func (ed *indexEditor) done() subjectIndex { return ed.x }

// indexBuilder builds an index from scratch: subjects are collected per leaf, and done builds
// every leaf's table once.
type indexBuilder struct {
	x       subjectIndex
	strs    interner
	pending map[int][]subjectC // by hi*loFan+lo
}

func newIndexBuilder() *indexBuilder {
	return &indexBuilder{x: newSubjectIndex(), strs: interner{}, pending: map[int][]subjectC{}}
}

// add compiles sg and adds it.
func (b *indexBuilder) add(sg *thauth.SubjectGrants) {
	s := compileSubject(sg, b.strs)
	s.hash = b.x.hash(sg.Subject.SubjectID)
	hi, lo := slot(s.hash)
	k := hi*loFan + lo
	b.pending[k] = append(b.pending[k], s)
}

// done builds the leaves and returns the index; it fails on a duplicate subject id.
func (b *indexBuilder) done() (subjectIndex, error) {
	n := 0
	b.strs = nil
	for hi := range hiFan {
		var in *innerNode
		for lo := range loFan {
			p := b.pending[hi*loFan+lo]
			if len(p) == 0 {
				continue
			}
			delete(b.pending, hi*loFan+lo)
			l := leaf{slots: newTable(tableSize(len(p)))}
			for _, s := range p {
				id := s.id()
				if _, dup := l.lookup(s.hash, id); dup {
					return subjectIndex{}, thauth.Errorf(thauth.EInvalid, "duplicate subject id %q", id)
				}
				l.place(s)
				l.n++
			}
			if in == nil {
				in = &innerNode{}
			}
			in.present |= 1 << lo
			in.leaves = append(in.leaves, l)
			n += len(p)
		}
		b.x.top[hi] = in
	}
	b.x.n = n
	return b.x, nil
}
