package engine

import "github.com/thauth/thauth"

// Reasons an explained grant did or did not match.
const (
	whyMatched        = "matched"
	whyOtherFeature   = "other feature or action"
	whyUnknownRole    = "role no longer exists"
	whyNoPermission   = "role has no permission for this feature and action"
	whyOtherTenant    = "other tenant"
	whyTenantOnly     = "tenant-scoped grant; the check has no tenant"
	whyNotYetValid    = "not yet valid"
	whyExpired        = "expired"
	whyNoResource     = "resource does not match"
	whyDoesNotCover   = "pattern does not cover the whole requested set"
	whyNeedsNoPattern = "grant has a resource pattern; the check has no resource"
)

// explain lists every grant of the subject and why it matched or not. It is the slow path
// (allocates) and does not decide: the decision always comes from decide, and tests check
// that the two agree.
func (s *Snapshot) explain(req *thauth.CheckRequest, now int64) *thauth.Explanation {
	ex := &thauth.Explanation{Grants: []thauth.ExplainedGrant{}}
	f := s.cfg.features[req.Feature]
	var a *actionC
	if f != nil {
		ex.FeatureKnown = true
		a = f.actions[req.Action]
		ex.ActionKnown = a != nil
	}
	sub := s.subjects.get(req.Subject)
	if sub == nil {
		return ex
	}
	ex.SubjectKnown = true
	res := parseResource(req.Resource)

	// common checks of tenant and window; "" when both pass.
	scope := func(t string, from, until int64) string {
		if t != "" && t != req.Tenant {
			if req.Tenant == "" {
				return whyTenantOnly
			}
			return whyOtherTenant
		}
		if from > now {
			return whyNotYetValid
		}
		if now >= until {
			return whyExpired
		}
		return ""
	}
	resourceWhy := func(p string, deny bool) string {
		ok := false
		if deny {
			ok = touches(p, res)
		} else {
			ok = covers(p, res)
		}
		switch {
		case ok:
			return ""
		case res.kind == resNone:
			return whyNeedsNoPattern
		case res.kind == resWildcard && !deny && touches(p, res):
			return whyDoesNotCover
		default:
			return whyNoResource
		}
	}

	for i := range sub.overrides() {
		o := &sub.grants[i]
		g := thauth.ExplainedGrant{
			Kind:       "override",
			Effect:     string(thauth.Allow),
			Feature:    nameOr(s.cfg.featureNames, o.feature),
			Action:     nameOr(s.cfg.actionNames, o.ref),
			Resource:   o.pattern,
			Tenant:     o.tenant,
			ValidFrom:  timeOf(o.from, noFrom),
			ValidUntil: timeOf(o.until, noUntil),
		}
		if o.deny {
			g.Effect = string(thauth.Deny)
		}
		switch {
		case a == nil || o.ref != a.id || o.feature != f.id:
			g.Why = whyOtherFeature
		default:
			g.Why = scope(o.tenant, o.from, o.until)
			if g.Why == "" {
				g.Why = resourceWhy(o.pattern, o.deny)
			}
		}
		if g.Why == "" {
			g.Matched, g.Why = true, whyMatched
		}
		ex.Grants = append(ex.Grants, g)
	}

	for i := int(sub.nOverrides); i < len(sub.grants); i++ {
		as := &sub.grants[i]
		base := thauth.ExplainedGrant{
			Kind:       "role",
			Role:       as.ref.Value(),
			Tenant:     as.tenant,
			ValidFrom:  timeOf(as.from, noFrom),
			ValidUntil: timeOf(as.until, noUntil),
		}
		r := s.cfg.roles[as.ref]
		if r == nil {
			base.Why = whyUnknownRole
			ex.Grants = append(ex.Grants, base)
			continue
		}
		base.Role = r.name
		var perms []string
		if a != nil {
			perms = r.perms[a.op]
		}
		if len(perms) == 0 {
			base.Why = whyNoPermission
			ex.Grants = append(ex.Grants, base)
			continue
		}
		why := scope(as.tenant, as.from, as.until)
		for _, p := range perms {
			g := base
			g.Feature, g.Action, g.Resource = req.Feature, req.Action, p
			g.Why = why
			if g.Why == "" {
				g.Why = resourceWhy(p, false)
			}
			if g.Why == "" {
				g.Matched, g.Why = true, whyMatched
			}
			ex.Grants = append(ex.Grants, g)
		}
	}
	return ex
}

func nameOr(names map[handle]string, id handle) string {
	if n, ok := names[id]; ok {
		return n
	}
	return id.Value()
}
