package engine

import (
	"math"
	"time"

	"github.com/thauth/thauth"
)

// Snapshot is one project's authorization state at one revision: its configuration and every
// subject's grants, compiled for evaluation. A Snapshot is immutable and safe for concurrent
// use; the engine replaces it as a whole (copy-on-write) when the project changes, so a check
// sees either the old state or the new one, never a mix, and never waits for a lock.
type Snapshot struct {
	project  thauth.Project
	revision int64
	cfg      *compiledConfig
	subjects subjectIndex
}

// Compile builds a snapshot of project p (at revision p.Revision) from a configuration and the
// subjects with their grants, without a store. The engine uses it for full loads; tests and
// benchmarks use it directly. cfg and subjects are copied, not retained. It fails (EInvalid)
// on duplicate feature, action, role or subject names, which would make decisions ambiguous.
func Compile(p thauth.Project, cfg *thauth.Config, subjects []*thauth.SubjectGrants) (*Snapshot, error) {
	cc, err := compileConfig(cfg)
	if err != nil {
		return nil, err
	}
	b := newIndexBuilder()
	for _, sg := range subjects {
		b.add(sg)
	}
	idx, err := b.done()
	if err != nil {
		return nil, err
	}
	return &Snapshot{project: p, revision: p.Revision, cfg: cc, subjects: idx}, nil
}

// Project returns the project the snapshot belongs to; its Revision is the snapshot's.
func (s *Snapshot) Project() thauth.Project {
	p := s.project
	p.Revision = s.revision
	return p
}

// Revision returns the project revision the snapshot reflects: every change up to it has
// been applied.
func (s *Snapshot) Revision() int64 { return s.revision }

// Config returns the project's configuration in canonical order. It is shared by every caller
// and must not be modified.
func (s *Snapshot) Config() *thauth.Config { return s.cfg.cfg }

// Version returns the configuration version, equal to Config().Version().
func (s *Snapshot) Version() string { return s.cfg.version }

// Subjects returns the number of subjects in the snapshot.
func (s *Snapshot) Subjects() int { return s.subjects.Len() }

// Check evaluates req at time now following spec §2 and §3 and returns the decision, with an
// explanation when req.Explain is set. It does no I/O, takes no lock and allocates nothing
// unless an explanation is asked for. Validity windows are compared at the microsecond
// precision stores keep (now is truncated to the microsecond). It never panics: any internal
// failure gives thauth.ErrorDecision, which denies.
func (s *Snapshot) Check(req *thauth.CheckRequest, now time.Time) (d thauth.Decision) {
	defer func() {
		if recover() != nil {
			d = thauth.ErrorDecision
		}
	}()
	d = s.decide(req, now.UnixMicro())
	if req.Explain {
		d.Explain = s.explain(req, now.UnixMicro())
	}
	return d
}

var (
	decisionDeny        = thauth.Decision{Allowed: false, Reason: thauth.ReasonOverrideDeny}
	decisionAllow       = thauth.Decision{Allowed: true, Reason: thauth.ReasonOverrideAllow}
	decisionDefaultDeny = thauth.Decision{Allowed: false, Reason: thauth.ReasonDefaultDeny}
)

// decide is the evaluation of spec §2. It must stay free of allocations: it runs once per
// decision.
func (s *Snapshot) decide(req *thauth.CheckRequest, now int64) thauth.Decision {
	f := s.cfg.features[req.Feature]
	if f == nil {
		return decisionDefaultDeny
	}
	a := f.actions[req.Action]
	if a == nil {
		return decisionDefaultDeny
	}
	sub := s.subjects.get(req.Subject)
	if sub == nil {
		return decisionDefaultDeny
	}
	res := parseResource(req.Resource)

	// Rules 1 and 2: overrides. Any matching deny decides, so keep looking after an allow.
	allowed := false
	for i := range sub.overrides() {
		o := &sub.grants[i]
		if o.ref != a.id || o.feature != f.id || !o.active(now, req.Tenant) {
			continue
		}
		if o.deny {
			if touches(o.pattern, res) {
				return decisionDeny
			}
		} else if !allowed && covers(o.pattern, res) {
			allowed = true
		}
	}
	if allowed {
		return decisionAllow
	}

	// Rule 3: role permissions; the matching role whose name sorts first gives the reason.
	best := int32(math.MaxInt32)
	reason := ""
	for i := int(sub.nOverrides); i < len(sub.grants); i++ {
		as := &sub.grants[i]
		if !as.active(now, req.Tenant) {
			continue
		}
		pc := a.roles.get(as.ref)
		if pc == nil || pc.rank >= best {
			continue
		}
		if pc.any || coversAny(pc.patterns, res) {
			best, reason = pc.rank, pc.reason
		}
	}
	if reason != "" {
		return thauth.Decision{Allowed: true, Reason: reason}
	}
	return decisionDefaultDeny
}

func coversAny(patterns []string, r request) bool {
	for _, p := range patterns {
		if covers(p, r) {
			return true
		}
	}
	return false
}
