package manage

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/thauth/thauth"
)

// The configuration document, version 1 (/work/shared/spec/config-document.md):
//
//	version: 1
//	features: [{name, description?, actions?: [name, ...]}]
//	roles:    [{name, description?, permissions?: [{feature, action, resource?}]}]
//	subjects: [{id, type, roles?: [{role, tenant?, valid_from?, valid_until?}],
//	            overrides?: [{feature, action, effect, tenant?, resource?, valid_from?, valid_until?}]}]
//
// Decisions on what the spec leaves open:
//   - Required: version (exactly the number 1), the names of features and roles, a subject's
//     id and type, a permission's feature and action, an assignment's role, an override's
//     feature, action and effect. Every list is optional: features, roles, actions,
//     permissions and a subject's roles and overrides may be left out (or null), meaning
//     none. subjects may be left out, meaning "leave subjects alone"; subjects: null is
//     refused because it is ambiguous between that and "delete every subject".
//   - null for an optional scalar (description, tenant, resource, valid_from, valid_until)
//     means absent. An empty description means none; an empty tenant, resource or timestamp
//     is an error, as in the API.
//   - Strings must be strings: in YAML, `actions: [read, 1]` or `role: true` is reported
//     (quote the value) rather than converted. yaml.v3 reads YAML 1.2, where yes/no/on/off
//     are plain strings, so `actions: [read, yes]` means the action "yes".
//   - A description is at most 1000 bytes of UTF-8 without control characters other than
//     newline and tab.
//   - Timestamps are RFC 3339; they are stored in UTC, truncated to microseconds, and
//     valid_from must be before valid_until.
//   - Identical permissions within a role, identical assignments and identical overrides
//     of one subject are duplicates. Two overrides differing only in effect are not.
//   - At most maxProblems problems are listed; the message gives the total.

// document is a parsed, validated configuration document: every name is valid, every
// reference resolves, nothing is duplicated. Times are UTC, truncated to microseconds.
// The same types render the export, so field names and omission rules live in one place.
type document struct {
	Features []docFeature
	Roles    []docRole
	Subjects []docSubject
	// HasSubjects says the document has a subjects key: its subjects are then the desired
	// state of every subject of the project.
	HasSubjects bool
}

type docFeature struct {
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	Actions     []string `json:"actions,omitempty"`
}

type docRole struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Permissions []docPermission `json:"permissions,omitempty"`
}

type docPermission struct {
	Feature  string `json:"feature"`
	Action   string `json:"action"`
	Resource string `json:"resource,omitempty"`
}

type docSubject struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	Roles     []docAssignment `json:"roles,omitempty"`
	Overrides []docOverride   `json:"overrides,omitempty"`
}

type docAssignment struct {
	Role       string     `json:"role"`
	Tenant     string     `json:"tenant,omitempty"`
	ValidFrom  *time.Time `json:"valid_from,omitempty"`
	ValidUntil *time.Time `json:"valid_until,omitempty"`
}

type docOverride struct {
	Feature    string        `json:"feature"`
	Action     string        `json:"action"`
	Effect     thauth.Effect `json:"effect"`
	Tenant     string        `json:"tenant,omitempty"`
	Resource   string        `json:"resource,omitempty"`
	ValidFrom  *time.Time    `json:"valid_from,omitempty"`
	ValidUntil *time.Time    `json:"valid_until,omitempty"`
}

const (
	documentVersion     = 1
	maxDescriptionBytes = 1000
	// maxProblems bounds the problem list of one rejection (the message still counts all).
	maxProblems = 1000
)

// parseDocument parses body in format f and validates it completely. It never panics. A
// document with problems gives an *thauth.Error with code EInvalid listing every problem
// (path and message); an input over maxDocumentBytes gives ETooLarge and an unknown format
// EUnsupported.
func parseDocument(body []byte, f Format) (*document, error) {
	if len(body) > maxDocumentBytes {
		return nil, thauth.Errorf(thauth.ETooLarge, "the configuration document is larger than %d bytes", maxDocumentBytes)
	}
	var root node
	var err error
	switch f {
	case FormatJSON:
		root, err = parseJSONTree(body)
	case FormatYAML:
		root, err = parseYAMLTree(body)
	default:
		return nil, thauth.Errorf(thauth.EUnsupported, "unsupported document format %q (use json or yaml)", string(f))
	}
	if err != nil {
		return nil, invalidDocument([]thauth.Problem{{Path: "", Message: err.Error()}}, 1)
	}
	w := walker{features: map[string]*featureInfo{}, roles: map[string]int{}}
	doc := w.document(&root)
	if w.total > 0 {
		return nil, invalidDocument(w.problems, w.total)
	}
	return doc, nil
}

func invalidDocument(problems []thauth.Problem, total int) *thauth.Error {
	msg := "the configuration document has 1 problem"
	if total != 1 {
		msg = fmt.Sprintf("the configuration document has %d problems", total)
	}
	if total > len(problems) {
		msg += fmt.Sprintf(" (the first %d are listed)", len(problems))
	}
	return &thauth.Error{Code: thauth.EInvalid, Message: msg, Problems: problems}
}

// path locates a value in the document, e.g. roles[0].permissions[2].feature. Paths are
// built as a chain and rendered only when a problem is reported.
type path struct {
	parent  *path
	key     string
	index   int
	isIndex bool
}

func (p *path) field(k string) *path { return &path{parent: p, key: k} }
func (p *path) at(i int) *path       { return &path{parent: p, index: i, isIndex: true} }

func (p *path) String() string {
	if p == nil {
		return ""
	}
	var b strings.Builder
	p.write(&b)
	return b.String()
}

func (p *path) write(b *strings.Builder) {
	if p.parent != nil {
		p.parent.write(b)
	}
	if p.isIndex {
		b.WriteByte('[')
		b.WriteString(strconv.Itoa(p.index))
		b.WriteByte(']')
		return
	}
	if p.parent != nil {
		b.WriteByte('.')
	}
	b.WriteString(p.key)
}

// walker checks the generic tree against the schema and builds the document. It records
// every problem and keeps going, so one pass reports them all.
type walker struct {
	problems []thauth.Problem
	total    int
	// features and roles seen so far, by name, for duplicate and reference checks.
	// Sections are walked in the order features, roles, subjects whatever the key order.
	features map[string]*featureInfo
	roles    map[string]int
}

type featureInfo struct {
	index   int
	actions map[string]int
}

func (w *walker) addf(p *path, format string, args ...any) {
	w.total++
	if len(w.problems) < maxProblems {
		w.problems = append(w.problems, thauth.Problem{Path: p.String(), Message: fmt.Sprintf(format, args...)})
	}
}

func describe(n *node) string {
	switch n.kind {
	case kindNull:
		return "null"
	case kindBool:
		return "a boolean"
	case kindNumber:
		return "a number"
	case kindString:
		return "a string"
	case kindList:
		return "a list"
	case kindMap:
		return "a mapping"
	case kindAlias:
		return "a YAML alias (aliases are not allowed)"
	default:
		return n.text
	}
}

// object checks that n is a mapping whose keys are among keys, each at most once, and
// returns the value of each key (nil when absent). ok is false when n is not a mapping.
func (w *walker) object(n *node, p *path, keys []string) (vals [8]*node, ok bool) {
	if n.kind != kindMap {
		w.addf(p, "must be a mapping, not %s", describe(n))
		return vals, false
	}
	for i := 0; i+1 < len(n.kids); i += 2 {
		k, v := &n.kids[i], &n.kids[i+1]
		if k.kind != kindString {
			w.addf(p, "has a key that is %s; keys must be strings", describe(k))
			continue
		}
		j := slices.Index(keys, k.text)
		switch {
		case j < 0:
			w.addf(p.field(k.text), "unknown key (expected %s)", strings.Join(keys, ", "))
		case vals[j] != nil:
			w.addf(p.field(k.text), "duplicate key")
		default:
			vals[j] = v
		}
	}
	return vals, true
}

// str returns the string n. A missing (nil) or null n is reported when required; ok is false
// whenever there is no usable string.
func (w *walker) str(n *node, p *path, required bool) (s string, ok bool) {
	switch {
	case n == nil:
		if required {
			w.addf(p, "is required")
		}
		return "", false
	case n.kind == kindString:
		return n.text, true
	case n.kind == kindNull && !required:
		return "", false
	case n.kind == kindNumber || n.kind == kindBool:
		w.addf(p, "must be a string, not %s (quote it)", describe(n))
	default:
		w.addf(p, "must be a string, not %s", describe(n))
	}
	return "", false
}

// list returns the items of the list n; a missing or null n is an empty list.
func (w *walker) list(n *node, p *path) []node {
	switch {
	case n == nil || n.kind == kindNull:
		return nil
	case n.kind == kindList:
		return n.kids
	default:
		w.addf(p, "must be a list, not %s", describe(n))
		return nil
	}
}

// name reads a required name. present says there is a string at all (references to it are
// then resolved, to avoid follow-on problems); valid says it is a valid name (only valid
// names are checked for duplicates, so a bad name is reported once).
func (w *walker) name(n *node, p *path) (s string, present, valid bool) {
	s, ok := w.str(n, p, true)
	if !ok {
		return "", false, false
	}
	if msg := thauth.ValidateName(s); msg != "" {
		w.addf(p, "invalid name %q: %s", s, msg)
		return s, true, false
	}
	return s, true, true
}

func (w *walker) identifier(n *node, p *path, required bool) (string, bool) {
	s, ok := w.str(n, p, required)
	if !ok {
		return "", false
	}
	if msg := thauth.ValidateIdentifier(s); msg != "" {
		w.addf(p, "%s", msg)
		return s, false
	}
	return s, true
}

func (w *walker) description(n *node, p *path) string {
	s, ok := w.str(n, p, false)
	if !ok {
		return ""
	}
	if msg := validateDescription(s); msg != "" {
		w.addf(p, "%s", msg)
	}
	return s
}

func validateDescription(s string) string {
	if len(s) > maxDescriptionBytes {
		return fmt.Sprintf("must be at most %d bytes", maxDescriptionBytes)
	}
	if !utf8.ValidString(s) {
		return "must be valid UTF-8"
	}
	for _, r := range s {
		if (r < 0x20 && r != '\n' && r != '\t') || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == utf8.RuneError {
			return "must not contain control characters other than newline and tab"
		}
	}
	return ""
}

func (w *walker) resource(n *node, p *path) (string, bool) {
	s, ok := w.str(n, p, false)
	if !ok {
		return "", n == nil || n.kind == kindNull
	}
	if msg := thauth.ValidateResource(s); msg != "" {
		w.addf(p, "invalid resource pattern %q: %s", s, msg)
		return s, false
	}
	return s, true
}

// timestamp returns the RFC 3339 time n (nil when absent), UTC, truncated to microseconds.
func (w *walker) timestamp(n *node, p *path) (*time.Time, bool) {
	s, ok := w.str(n, p, false)
	if !ok {
		return nil, n == nil || n.kind == kindNull
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		w.addf(p, "invalid timestamp %q: must be RFC 3339, like 2026-12-01T00:00:00Z", s)
		return nil, false
	}
	t = storedTime(t)
	return &t, true
}

// window reads valid_from and valid_until and checks that from is before until.
func (w *walker) window(from, until *node, p *path) (f, u *time.Time, ok bool) {
	f, okF := w.timestamp(from, p.field("valid_from"))
	u, okU := w.timestamp(until, p.field("valid_until"))
	if f != nil && u != nil && !f.Before(*u) {
		w.addf(p.field("valid_until"), "must be later than valid_from")
		return f, u, false
	}
	return f, u, okF && okU
}

var (
	rootKeys       = []string{"version", "features", "roles", "subjects"}
	featureKeys    = []string{"name", "description", "actions"}
	roleKeys       = []string{"name", "description", "permissions"}
	permissionKeys = []string{"feature", "action", "resource"}
	subjectKeys    = []string{"id", "type", "roles", "overrides"}
	assignmentKeys = []string{"role", "tenant", "valid_from", "valid_until"}
	overrideKeys   = []string{"feature", "action", "effect", "tenant", "resource", "valid_from", "valid_until"}
)

func (w *walker) document(root *node) *document {
	if root.kind == kindNull {
		w.addf(nil, "the document is empty")
		return nil
	}
	v, ok := w.object(root, nil, rootKeys)
	if !ok {
		return nil
	}
	var top *path
	doc := &document{}
	switch vp := top.field("version"); {
	case v[0] == nil:
		w.addf(vp, "is required (version: 1)")
	case v[0].kind != kindNumber:
		w.addf(vp, "must be the number %d, not %s", documentVersion, describe(v[0]))
	case v[0].text != strconv.Itoa(documentVersion):
		w.addf(vp, "unsupported version %s (this server reads version %d)", v[0].text, documentVersion)
	}
	doc.Features = w.featureList(v[1], top.field("features"))
	doc.Roles = w.roleList(v[2], top.field("roles"))
	if v[3] != nil {
		sp := top.field("subjects")
		if v[3].kind == kindNull {
			w.addf(sp, "must be a list: use [] to delete every subject, or leave the key out to keep subjects as they are")
		} else {
			doc.HasSubjects = true
			doc.Subjects = w.subjectList(v[3], sp)
		}
	}
	return doc
}

func (w *walker) featureList(n *node, p *path) []docFeature {
	items := w.list(n, p)
	out := make([]docFeature, 0, len(items))
	for i := range items {
		ip := p.at(i)
		v, ok := w.object(&items[i], ip, featureKeys)
		if !ok {
			continue
		}
		var f docFeature
		name, named, valid := w.name(v[0], ip.field("name"))
		f.Name = name
		f.Description = w.description(v[1], ip.field("description"))
		info := &featureInfo{index: i, actions: map[string]int{}}
		if named {
			if first, dup := w.features[name]; dup {
				if valid {
					w.addf(ip.field("name"), "duplicate feature %q (also features[%d])", name, first.index)
				}
				info = first // merge actions, so references to either are not reported too
			} else {
				w.features[name] = info
			}
		}
		ap := ip.field("actions")
		actions := w.list(v[2], ap)
		seen := map[string]int{}
		for j := range actions {
			a, named, valid := w.name(&actions[j], ap.at(j))
			if !named {
				continue
			}
			if !valid {
				info.actions[a] = j
				continue
			}
			if k, dup := seen[a]; dup {
				w.addf(ap.at(j), "duplicate action %q (also actions[%d])", a, k)
				continue
			}
			seen[a] = j
			info.actions[a] = j
			f.Actions = append(f.Actions, a)
		}
		out = append(out, f)
	}
	return out
}

func (w *walker) roleList(n *node, p *path) []docRole {
	items := w.list(n, p)
	out := make([]docRole, 0, len(items))
	for i := range items {
		ip := p.at(i)
		v, ok := w.object(&items[i], ip, roleKeys)
		if !ok {
			continue
		}
		var r docRole
		name, named, valid := w.name(v[0], ip.field("name"))
		r.Name = name
		if named {
			if first, dup := w.roles[name]; !dup {
				w.roles[name] = i
			} else if valid {
				w.addf(ip.field("name"), "duplicate role %q (also roles[%d])", name, first)
			}
		}
		r.Description = w.description(v[1], ip.field("description"))
		pp := ip.field("permissions")
		perms := w.list(v[2], pp)
		seen := map[docPermission]int{}
		for j := range perms {
			jp := pp.at(j)
			pv, ok := w.object(&perms[j], jp, permissionKeys)
			if !ok {
				continue
			}
			var perm docPermission
			okRef := w.featureAction(pv[0], pv[1], jp, &perm.Feature, &perm.Action)
			res, okRes := w.resource(pv[2], jp.field("resource"))
			perm.Resource = res
			if !okRef || !okRes {
				continue
			}
			if k, dup := seen[perm]; dup {
				w.addf(jp, "duplicate permission (same as permissions[%d])", k)
				continue
			}
			seen[perm] = j
			r.Permissions = append(r.Permissions, perm)
		}
		out = append(out, r)
	}
	return out
}

// featureAction reads a feature and an action name that must name a feature of the
// document and one of its actions.
func (w *walker) featureAction(fn, an *node, p *path, feature, action *string) bool {
	f, okF := w.str(fn, p.field("feature"), true)
	a, okA := w.str(an, p.field("action"), true)
	*feature, *action = f, a
	if !okF {
		return false
	}
	info, known := w.features[f]
	if !known {
		w.addf(p.field("feature"), "unknown feature %q", f)
		return false
	}
	if !okA {
		return false
	}
	if _, known := info.actions[a]; !known {
		w.addf(p.field("action"), "unknown action %q: feature %q has no such action", a, f)
		return false
	}
	return true
}

func (w *walker) subjectList(n *node, p *path) []docSubject {
	items := w.list(n, p)
	out := make([]docSubject, 0, len(items))
	ids := make(map[string]int, len(items))
	for i := range items {
		ip := p.at(i)
		v, ok := w.object(&items[i], ip, subjectKeys)
		if !ok {
			continue
		}
		var s docSubject
		id, okID := w.identifier(v[0], ip.field("id"), true)
		s.ID = id
		if okID {
			if first, dup := ids[id]; dup {
				w.addf(ip.field("id"), "duplicate subject %q (also subjects[%d])", id, first)
			} else {
				ids[id] = i
			}
		}
		s.Type, _ = w.identifier(v[1], ip.field("type"), true)
		s.Roles = w.assignments(v[2], ip.field("roles"))
		s.Overrides = w.overrides(v[3], ip.field("overrides"))
		out = append(out, s)
	}
	return out
}

func (w *walker) assignments(n *node, p *path) []docAssignment {
	items := w.list(n, p)
	var out []docAssignment
	seen := map[string]int{}
	for j := range items {
		jp := p.at(j)
		v, ok := w.object(&items[j], jp, assignmentKeys)
		if !ok {
			continue
		}
		var a docAssignment
		role, okRole := w.str(v[0], jp.field("role"), true)
		a.Role = role
		if okRole {
			if _, known := w.roles[role]; !known {
				w.addf(jp.field("role"), "unknown role %q", role)
				okRole = false
			}
		}
		okTenant := true
		if v[1] != nil && v[1].kind != kindNull {
			a.Tenant, okTenant = w.identifier(v[1], jp.field("tenant"), false)
		}
		var okWindow bool
		a.ValidFrom, a.ValidUntil, okWindow = w.window(v[2], v[3], jp)
		if !okRole || !okTenant || !okWindow {
			continue
		}
		key := grantKey(a.Role, a.Tenant, a.ValidFrom, a.ValidUntil)
		if k, dup := seen[key]; dup {
			w.addf(jp, "duplicate assignment (same as roles[%d])", k)
			continue
		}
		seen[key] = j
		out = append(out, a)
	}
	return out
}

func (w *walker) overrides(n *node, p *path) []docOverride {
	items := w.list(n, p)
	var out []docOverride
	seen := map[string]int{}
	for j := range items {
		jp := p.at(j)
		v, ok := w.object(&items[j], jp, overrideKeys)
		if !ok {
			continue
		}
		var o docOverride
		okRef := w.featureAction(v[0], v[1], jp, &o.Feature, &o.Action)
		effect, okEffect := w.str(v[2], jp.field("effect"), true)
		o.Effect = thauth.Effect(effect)
		if okEffect && o.Effect != thauth.Allow && o.Effect != thauth.Deny {
			w.addf(jp.field("effect"), "must be allow or deny, not %q", effect)
			okEffect = false
		}
		okTenant := true
		if v[3] != nil && v[3].kind != kindNull {
			o.Tenant, okTenant = w.identifier(v[3], jp.field("tenant"), false)
		}
		var okRes, okWindow bool
		o.Resource, okRes = w.resource(v[4], jp.field("resource"))
		o.ValidFrom, o.ValidUntil, okWindow = w.window(v[5], v[6], jp)
		if !okRef || !okEffect || !okTenant || !okRes || !okWindow {
			continue
		}
		key := grantKey(o.Feature, o.Action, string(o.Effect), o.Tenant, o.Resource) + grantKey("", "", o.ValidFrom, o.ValidUntil)
		if k, dup := seen[key]; dup {
			w.addf(jp, "duplicate override (same as overrides[%d])", k)
			continue
		}
		seen[key] = j
		out = append(out, o)
	}
	return out
}

// grantKey encodes strings and optional times into one comparable key: strings
// length-prefixed (so no two different lists encode alike), times as Unix microseconds.
func grantKey(parts ...any) string {
	var b []byte
	for _, p := range parts {
		switch v := p.(type) {
		case string:
			b = strconv.AppendInt(b, int64(len(v)), 10)
			b = append(b, ':')
			b = append(b, v...)
		case *time.Time:
			if v == nil {
				b = append(b, '-')
			} else {
				b = strconv.AppendInt(b, v.UnixMicro(), 10)
			}
			b = append(b, ';')
		}
	}
	return string(b)
}

// configDocument builds the document of a stored configuration (without subjects; add them
// with subjectDocument, then call sort).
func configDocument(cfg *thauth.Config) *document {
	doc := &document{}
	for _, f := range cfg.Features {
		df := docFeature{Name: f.Name, Description: f.Description}
		for _, a := range f.Actions {
			df.Actions = append(df.Actions, a.Name)
		}
		doc.Features = append(doc.Features, df)
	}
	for _, r := range cfg.Roles {
		dr := docRole{Name: r.Name, Description: r.Description}
		for _, p := range r.Permissions {
			dr.Permissions = append(dr.Permissions, docPermission{Feature: p.FeatureName, Action: p.ActionName, Resource: p.Resource})
		}
		doc.Roles = append(doc.Roles, dr)
	}
	return doc
}

// subjectDocument builds the document entry of a stored subject.
func subjectDocument(sg *thauth.SubjectGrants) docSubject {
	s := docSubject{ID: sg.Subject.SubjectID, Type: sg.Subject.SubjectType}
	for _, a := range sg.Assignments {
		s.Roles = append(s.Roles, docAssignment{Role: a.RoleName, Tenant: a.Tenant, ValidFrom: utcPtr(a.From), ValidUntil: utcPtr(a.Until)})
	}
	for _, o := range sg.Overrides {
		s.Overrides = append(s.Overrides, docOverride{Feature: o.FeatureName, Action: o.ActionName, Effect: o.Effect,
			Tenant: o.Tenant, Resource: o.Resource, ValidFrom: utcPtr(o.From), ValidUntil: utcPtr(o.Until)})
	}
	return s
}

// sort puts doc in canonical order, the order of exports: features, roles and subjects by
// name or id; actions by name; permissions by (feature, action, resource); assignments by
// (role, tenant, valid_from, valid_until); overrides by (feature, action, tenant, resource,
// effect, valid_from, valid_until).
func (doc *document) sort() {
	slices.SortFunc(doc.Features, func(a, b docFeature) int { return cmp.Compare(a.Name, b.Name) })
	for _, f := range doc.Features {
		slices.Sort(f.Actions)
	}
	slices.SortFunc(doc.Roles, func(a, b docRole) int { return cmp.Compare(a.Name, b.Name) })
	for _, r := range doc.Roles {
		slices.SortFunc(r.Permissions, func(a, b docPermission) int {
			return cmp.Or(cmp.Compare(a.Feature, b.Feature), cmp.Compare(a.Action, b.Action), cmp.Compare(a.Resource, b.Resource))
		})
	}
	slices.SortFunc(doc.Subjects, func(a, b docSubject) int { return cmp.Compare(a.ID, b.ID) })
	for _, s := range doc.Subjects {
		slices.SortFunc(s.Roles, func(a, b docAssignment) int {
			return cmp.Or(cmp.Compare(a.Role, b.Role), cmp.Compare(a.Tenant, b.Tenant),
				compareTime(a.ValidFrom, b.ValidFrom), compareTime(a.ValidUntil, b.ValidUntil))
		})
		slices.SortFunc(s.Overrides, func(a, b docOverride) int {
			return cmp.Or(cmp.Compare(a.Feature, b.Feature), cmp.Compare(a.Action, b.Action),
				cmp.Compare(a.Tenant, b.Tenant), cmp.Compare(a.Resource, b.Resource), cmp.Compare(a.Effect, b.Effect),
				compareTime(a.ValidFrom, b.ValidFrom), compareTime(a.ValidUntil, b.ValidUntil))
		})
	}
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := storedTime(*t)
	return &u
}

// compareTime orders optional times, absent first.
func compareTime(a, b *time.Time) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return -1
	case b == nil:
		return 1
	default:
		return a.Compare(*b)
	}
}

// render serializes doc in format f. JSON is indented by two spaces; YAML uses block style
// for sections and flow style for the small items (actions, permissions, grants), like the
// examples in the spec. Both parse back to the same document.
func render(doc *document, f Format) ([]byte, error) {
	switch f {
	case FormatJSON:
		return renderJSON(doc)
	case FormatYAML:
		return renderYAML(doc)
	default:
		return nil, thauth.Errorf(thauth.EUnsupported, "unsupported document format %q (use json or yaml)", string(f))
	}
}

// renderJSON writes features and roles indented, and each subject on one line: a project may
// have hundreds of thousands of subjects, and one line each keeps the export compact and its
// diffs readable.
func renderJSON(doc *document) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	section := func(name string, v any, indent bool) error {
		buf.WriteString(",\n  \"" + name + "\": ")
		if indent {
			enc.SetIndent("  ", "  ")
		} else {
			enc.SetIndent("", "")
		}
		if err := enc.Encode(v); err != nil {
			return err
		}
		buf.Truncate(buf.Len() - 1) // Encode's newline
		return nil
	}
	buf.WriteString("{\n  \"version\": " + strconv.Itoa(documentVersion))
	features, roles := doc.Features, doc.Roles
	if features == nil {
		features = []docFeature{}
	}
	if roles == nil {
		roles = []docRole{}
	}
	if err := section("features", features, true); err != nil {
		return nil, thauth.Internal(err, "could not render the configuration document")
	}
	if err := section("roles", roles, true); err != nil {
		return nil, thauth.Internal(err, "could not render the configuration document")
	}
	if doc.HasSubjects {
		buf.WriteString(",\n  \"subjects\": [")
		enc.SetIndent("", "")
		for i := range doc.Subjects {
			if i > 0 {
				buf.WriteByte(',')
			}
			buf.WriteString("\n    ")
			if err := enc.Encode(&doc.Subjects[i]); err != nil {
				return nil, thauth.Internal(err, "could not render the configuration document")
			}
			buf.Truncate(buf.Len() - 1)
		}
		if len(doc.Subjects) > 0 {
			buf.WriteString("\n  ")
		}
		buf.WriteByte(']')
	}
	buf.WriteString("\n}\n")
	return buf.Bytes(), nil
}

// YAML node constructors.
func ymap(flow bool) *yaml.Node {
	n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	if flow {
		n.Style = yaml.FlowStyle
	}
	return n
}

func yseq(flow bool) *yaml.Node {
	n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	if flow {
		n.Style = yaml.FlowStyle
	}
	return n
}

func ystr(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s} }

func yset(m *yaml.Node, key string, v *yaml.Node) { m.Content = append(m.Content, ystr(key), v) }

// ysetStr adds key: s unless s is empty (empty optional fields are omitted).
func ysetStr(m *yaml.Node, key, s string) {
	if s != "" {
		yset(m, key, ystr(s))
	}
}

func ysetTime(m *yaml.Node, key string, t *time.Time) {
	if t != nil {
		yset(m, key, ystr(formatTime(*t)))
	}
}

// formatTime renders a stored time as RFC 3339 with fractional seconds only when non-zero.
func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// yamlBatch is the number of subjects rendered per YAML encoder (see renderYAML).
const yamlBatch = 16

// renderYAML renders doc. Subjects are rendered in batches, each by its own encoder, and
// indented under "subjects:": yaml.v3's emitter keeps every event of a document in memory,
// which makes one encoder over a project of 100 000 subjects slow and large. Splicing is
// safe because subject entries hold no multi-line scalars (identifiers have no control
// characters).
func renderYAML(doc *document) (out []byte, err error) {
	// yaml.v3 reports encoding failures by panicking; none is expected for validated
	// strings, but a failure must come back as an error.
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, thauth.Internal(fmt.Errorf("%v", r), "could not render the configuration document")
		}
	}()
	var buf bytes.Buffer
	if err := encodeYAML(&buf, configYAML(doc), ""); err != nil {
		return nil, err
	}
	if !doc.HasSubjects {
		return buf.Bytes(), nil
	}
	if len(doc.Subjects) == 0 {
		buf.WriteString("subjects: []\n")
		return buf.Bytes(), nil
	}
	buf.WriteString("subjects:\n")
	for start := 0; start < len(doc.Subjects); start += yamlBatch {
		seq := yseq(false)
		for _, s := range doc.Subjects[start:min(start+yamlBatch, len(doc.Subjects))] {
			seq.Content = append(seq.Content, subjectYAML(&s))
		}
		if err := encodeYAML(&buf, seq, "  "); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}

// encodeYAML encodes n into buf, prefixing every line with indent.
func encodeYAML(buf *bytes.Buffer, n *yaml.Node, indent string) error {
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(n); err != nil {
		return thauth.Internal(err, "could not render the configuration document")
	}
	if err := enc.Close(); err != nil {
		return thauth.Internal(err, "could not render the configuration document")
	}
	if indent == "" {
		buf.Write(out.Bytes())
		return nil
	}
	for line := range bytes.Lines(out.Bytes()) {
		buf.WriteString(indent)
		buf.Write(line)
	}
	return nil
}

// configYAML is the document without its subjects: version, features and roles.
func configYAML(doc *document) *yaml.Node {
	root := ymap(false)
	yset(root, "version", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(documentVersion)})
	features := yseq(false)
	for _, f := range doc.Features {
		m := ymap(false)
		yset(m, "name", ystr(f.Name))
		ysetStr(m, "description", f.Description)
		if len(f.Actions) > 0 {
			actions := yseq(true)
			for _, a := range f.Actions {
				actions.Content = append(actions.Content, ystr(a))
			}
			yset(m, "actions", actions)
		}
		features.Content = append(features.Content, m)
	}
	yset(root, "features", features)
	roles := yseq(false)
	for _, r := range doc.Roles {
		m := ymap(false)
		yset(m, "name", ystr(r.Name))
		ysetStr(m, "description", r.Description)
		if len(r.Permissions) > 0 {
			perms := yseq(false)
			for _, p := range r.Permissions {
				pm := ymap(true)
				yset(pm, "feature", ystr(p.Feature))
				yset(pm, "action", ystr(p.Action))
				ysetStr(pm, "resource", p.Resource)
				perms.Content = append(perms.Content, pm)
			}
			yset(m, "permissions", perms)
		}
		roles.Content = append(roles.Content, m)
	}
	yset(root, "roles", roles)
	return root
}

func subjectYAML(s *docSubject) *yaml.Node {
	m := ymap(false)
	yset(m, "id", ystr(s.ID))
	yset(m, "type", ystr(s.Type))
	if len(s.Roles) > 0 {
		as := yseq(false)
		for _, a := range s.Roles {
			am := ymap(true)
			yset(am, "role", ystr(a.Role))
			ysetStr(am, "tenant", a.Tenant)
			ysetTime(am, "valid_from", a.ValidFrom)
			ysetTime(am, "valid_until", a.ValidUntil)
			as.Content = append(as.Content, am)
		}
		yset(m, "roles", as)
	}
	if len(s.Overrides) > 0 {
		os := yseq(false)
		for _, o := range s.Overrides {
			om := ymap(true)
			yset(om, "feature", ystr(o.Feature))
			yset(om, "action", ystr(o.Action))
			yset(om, "effect", ystr(string(o.Effect)))
			ysetStr(om, "tenant", o.Tenant)
			ysetStr(om, "resource", o.Resource)
			ysetTime(om, "valid_from", o.ValidFrom)
			ysetTime(om, "valid_until", o.ValidUntil)
			os.Content = append(os.Content, om)
		}
		yset(m, "overrides", os)
	}
	return m
}
