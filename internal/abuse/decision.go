package abuse

import (
	"math"
	"strconv"
	"strings"
	"time"
)

// counts are the decisions of one step or of the whole window.
type counts struct {
	total, deny, err uint32
}

func (c *counts) sub(o counts) {
	c.total -= o.total
	c.deny -= o.deny
	c.err -= o.err
}

// decisionState is a project's recent decisions: the window's steps, their sums, the
// baseline of older decisions, and when each spike last fired.
type decisionState struct {
	orgID string
	head  int64 // step number (unix time / DecisionStep) of the newest step, steps[head%decisionSteps]
	steps [decisionSteps]counts
	sum   counts // over steps
	// Exponentially weighted decisions that have left the window; each step multiplies them
	// by Detector.decay.
	baseTotal, baseDeny, baseErr float64
	lastDeny, lastErr            int64 // when each spike last fired; 0 never
}

// rotate moves the window so that step is the newest, folding the steps that leave it into
// the baseline.
func (st *decisionState) rotate(step int64, decay float64) {
	n := step - st.head
	for i := int64(1); i <= min(n, decisionSteps); i++ {
		c := &st.steps[(st.head+i)%decisionSteps]
		st.baseTotal = st.baseTotal*decay + float64(c.total)
		st.baseDeny = st.baseDeny*decay + float64(c.deny)
		st.baseErr = st.baseErr*decay + float64(c.err)
		st.sum.sub(*c)
		*c = counts{}
	}
	if n > decisionSteps {
		f := math.Pow(decay, float64(n-decisionSteps))
		st.baseTotal *= f
		st.baseDeny *= f
		st.baseErr *= f
	}
	st.head = step
}

// baseline returns the weighted deny and error ratios of the project's history; 0 without one.
func (st *decisionState) baseline() (deny, err float64) {
	if st.baseTotal < 1e-9 {
		return 0, 0
	}
	return st.baseDeny / st.baseTotal, st.baseErr / st.baseTotal
}

// ratioEps absorbs float rounding in "ratio ≥ factor × baseline", so that a ratio exactly at
// the threshold fires.
const ratioEps = 1e-9

// Decision records one decision of projectID (organization orgID): allowed, denied, or failed
// with an error (isError; such a decision counts as an error, not a deny). It fires deny_spike
// when the last minute has at least SpikeMinDecisions decisions and a deny ratio of at least
// SpikeMinDenyRatio and SpikeFactor times the project's baseline; error_spike when it has at
// least SpikeMinErrors errors and an error ratio of at least SpikeMinErrorRatio and SpikeFactor
// times the baseline. Each at most once per project per SpikeCooldown.
//
// Decision is called for every check: it takes a shard lock for a few arithmetic operations
// and does not allocate once the project is known. Reading the clock costs as much as the
// rest; a caller that has already read it uses DecisionAt.
func (d *Detector) Decision(projectID, orgID string, allowed, isError bool) {
	d.DecisionAt(d.o.Now(), projectID, orgID, allowed, isError)
}

// DecisionAt is Decision at time now, for the decision path, which has read the clock already.
func (d *Detector) DecisionAt(now time.Time, projectID, orgID string, allowed, isError bool) {
	ns := now.UnixNano()
	step := ns / int64(DecisionStep)
	key := clampKey(projectID)
	s := d.decisions.shard(key)
	s.mu.Lock()
	e, created := s.get(key, ns, true, d.decisions.perShard)
	st := &e.v
	if created {
		st.head = step
	} else if step > st.head {
		st.rotate(step, d.decay)
	}
	if st.orgID != orgID {
		st.orgID = strings.Clone(clampKey(orgID))
	}
	e.expires = ns + max(4*int64(d.o.SpikeBaseline), int64(d.o.SpikeCooldown))

	c := &st.steps[st.head%decisionSteps]
	c.total++
	st.sum.total++
	switch {
	case isError:
		c.err++
		st.sum.err++
	case !allowed:
		c.deny++
		st.sum.deny++
	}

	var fireDeny, fireErr bool
	var snap counts
	var baseDeny, baseErr float64
	cool := int64(d.o.SpikeCooldown)
	if st.sum.total >= uint32(d.o.SpikeMinDecisions) && st.sum.deny > 0 && (st.lastDeny == 0 || ns-st.lastDeny >= cool) {
		ratio := float64(st.sum.deny) / float64(st.sum.total)
		baseDeny, _ = st.baseline()
		if ratio >= d.o.SpikeMinDenyRatio*(1-ratioEps) && ratio >= d.o.SpikeFactor*baseDeny*(1-ratioEps) {
			fireDeny = true
			st.lastDeny = ns
		}
	}
	if st.sum.err >= uint32(d.o.SpikeMinErrors) && (st.lastErr == 0 || ns-st.lastErr >= cool) {
		ratio := float64(st.sum.err) / float64(st.sum.total)
		_, baseErr = st.baseline()
		if ratio >= d.o.SpikeMinErrorRatio*(1-ratioEps) && ratio >= d.o.SpikeFactor*baseErr*(1-ratioEps) {
			fireErr = true
			st.lastErr = ns
		}
	}
	if fireDeny || fireErr {
		snap = st.sum
		orgID = st.orgID
	}
	s.mu.Unlock()

	if fireDeny {
		d.emitSpike(KindDenySpike, SeverityMedium, "denied", ns, key, orgID, snap, snap.deny, baseDeny)
	}
	if fireErr {
		d.emitSpike(KindErrorSpike, SeverityHigh, "failed with an error", ns, key, orgID, snap, snap.err, baseErr)
	}
}

func (d *Detector) emitSpike(kind, severity, what string, ns int64, projectID, orgID string, c counts, n uint32, base float64) {
	ratio := float64(n) / float64(c.total)
	pct := func(f float64) string { return strconv.FormatFloat(100*f, 'f', 1, 64) + "%" }
	d.emit(Event{
		Kind:           kind,
		Severity:       severity,
		At:             time.Unix(0, ns),
		OrganizationID: orgID,
		ProjectID:      projectID,
		Title: strconv.FormatUint(uint64(n), 10) + " of " + strconv.FormatUint(uint64(c.total), 10) +
			" decisions of project " + projectID + " " + what + " in the last minute (" + pct(ratio) +
			", usually " + pct(base) + ")",
		Evidence: map[string]string{
			"decisions":      strconv.FormatUint(uint64(c.total), 10),
			"count":          strconv.FormatUint(uint64(n), 10),
			"ratio":          strconv.FormatFloat(ratio, 'f', 4, 64),
			"baseline_ratio": strconv.FormatFloat(base, 'f', 4, 64),
			"window":         DecisionWindow.String(),
		},
	})
}
