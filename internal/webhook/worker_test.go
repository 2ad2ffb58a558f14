package webhook

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// received is one request as the receiver saw it.
type received struct {
	header http.Header
	body   []byte
}

// receiver is a webhook endpoint under test: it answers with respond(n) for its n-th request
// (from 1) and keeps every request.
type receiver struct {
	mu      sync.Mutex
	reqs    []received
	respond func(n int, w http.ResponseWriter)
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.reqs = append(r.reqs, received{req.Header.Clone(), body})
	n := len(r.reqs)
	r.mu.Unlock()
	if r.respond == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	r.respond(n, w)
}

func (r *receiver) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.reqs...)
}

// statuses answers the n-th request with codes[n-1], and the last code after that.
func statuses(codes ...int) func(int, http.ResponseWriter) {
	return func(n int, w http.ResponseWriter) {
		c := codes[min(n, len(codes))-1]
		w.WriteHeader(c)
		fmt.Fprintf(w, `{"attempt":%d}`, n)
	}
}

// harness wires a receiver, the fake store and a worker on an injected clock.
type harness struct {
	t      *testing.T
	clock  *clock
	store  *fakeStore
	recv   *receiver
	srv    *httptest.Server
	worker *Worker
	ep     Endpoint
}

func newHarness(t *testing.T, respond func(int, http.ResponseWriter)) *harness {
	t.Helper()
	h := &harness{t: t, clock: newClock(), store: newFakeStore(), recv: &receiver{respond: respond}}
	h.srv = httptest.NewServer(h.recv)
	t.Cleanup(h.srv.Close)
	secret, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	h.ep = Endpoint{ID: "ep_1", OrganizationID: "org_1", URL: h.srv.URL + "/hook", Secret: secret}
	h.store.putEndpoint(h.ep)
	sender := NewSender(SenderOptions{URLPolicy: URLPolicy{AllowInsecure: true, AllowPrivate: true}, Now: h.clock.Now})
	h.worker = NewWorker(WorkerOptions{
		Store: h.store, Sender: sender, Now: h.clock.Now,
		Jitter: func(d time.Duration) time.Duration { return d },
	})
	return h
}

// enqueue adds a pending delivery of a security event, due now.
func (h *harness) enqueue(id string) Delivery {
	h.t.Helper()
	payload, err := NewPayload("security.revoked_key_used", h.clock.Now(), map[string]string{"key_id": "key_1"})
	if err != nil {
		h.t.Fatal(err)
	}
	d := NewDelivery(id, &h.ep, "evt_"+id, "security.revoked_key_used", payload, h.clock.Now())
	h.store.putDelivery(d)
	return d
}

func (h *harness) runOnce() int {
	h.t.Helper()
	n, err := h.worker.RunOnce(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	return n
}

func TestDeliverySignedAndVerifiable(t *testing.T) {
	h := newHarness(t, nil)
	d := h.enqueue("d1")
	if n := h.runOnce(); n != 1 {
		t.Fatalf("claimed %d, want 1", n)
	}
	reqs := h.recv.requests()
	if len(reqs) != 1 {
		t.Fatalf("receiver got %d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if err := Verify([]string{h.ep.Secret}, r.header, r.body, h.clock.Now(), 0); err != nil {
		t.Fatalf("the receiver cannot verify our delivery: %v", err)
	}
	for name, want := range map[string]string{
		"Content-Type":  "application/json",
		HeaderID:        d.EventID,
		HeaderTimestamp: fmt.Sprint(h.clock.Now().Unix()),
	} {
		if got := r.header.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if string(r.body) != string(d.Payload) {
		t.Errorf("body = %s, want %s", r.body, d.Payload)
	}
	// Tampering with anything the signature covers is detected.
	tampered := []struct {
		name string
		edit func(http.Header, []byte) (http.Header, []byte)
	}{
		{"body", func(hd http.Header, b []byte) (http.Header, []byte) {
			return hd, []byte(strings.Replace(string(b), "key_1", "key_2", 1))
		}},
		{"id", func(hd http.Header, b []byte) (http.Header, []byte) { hd.Set(HeaderID, "evt_other"); return hd, b }},
		{"timestamp", func(hd http.Header, b []byte) (http.Header, []byte) {
			hd.Set(HeaderTimestamp, fmt.Sprint(h.clock.Now().Unix()-1))
			return hd, b
		}},
	}
	for _, tc := range tampered {
		hd, b := tc.edit(r.header.Clone(), append([]byte(nil), r.body...))
		if err := Verify([]string{h.ep.Secret}, hd, b, h.clock.Now(), 0); !errors.Is(err, ErrNoMatch) {
			t.Errorf("tampered %s: Verify = %v, want ErrNoMatch", tc.name, err)
		}
	}

	got, history := h.store.delivery("d1")
	if got.Status != StatusDelivered || got.Attempts != 1 || got.LastStatusCode != 204 || !got.DeliveredAt.Equal(h.clock.Now()) || !got.NextAttemptAt.IsZero() {
		t.Fatalf("delivery after success = %+v", got)
	}
	if len(history) != 1 || history[0].Number != 1 || history[0].StatusCode != 204 || history[0].Error != "" {
		t.Fatalf("history = %+v", history)
	}
	if n := h.runOnce(); n != 0 {
		t.Fatalf("a delivered delivery was claimed again")
	}
}

func TestRetriesFollowTheSchedule(t *testing.T) {
	h := newHarness(t, statuses(500, 502, 503, 200))
	h.enqueue("d1")
	start := h.clock.Now()
	sched := DefaultSchedule()

	h.runOnce()
	for i, wantCode := range []int{502, 503, 200} {
		d, _ := h.store.delivery("d1")
		due := start
		for _, s := range sched[:i+1] {
			due = due.Add(s)
		}
		if !d.NextAttemptAt.Equal(due) {
			t.Fatalf("after attempt %d: next attempt at %s, want %s", i+1, d.NextAttemptAt, due)
		}
		// One second early: nothing is due.
		h.clock.Set(due.Add(-time.Second))
		if n := h.runOnce(); n != 0 {
			t.Fatalf("attempt %d ran %s early", i+2, time.Second)
		}
		h.clock.Set(due)
		if n := h.runOnce(); n != 1 {
			t.Fatalf("attempt %d did not run when due", i+2)
		}
		if _, hist := h.store.delivery("d1"); hist[len(hist)-1].StatusCode != wantCode {
			t.Fatalf("attempt %d got %d, want %d", i+2, hist[len(hist)-1].StatusCode, wantCode)
		}
	}
	d, history := h.store.delivery("d1")
	if d.Status != StatusDelivered || d.Attempts != 4 {
		t.Fatalf("delivery = %+v", d)
	}
	var codes []int
	for i, a := range history {
		codes = append(codes, a.StatusCode)
		if a.Number != i+1 {
			t.Errorf("attempt %d numbered %d", i+1, a.Number)
		}
		if a.StatusCode != 200 && !strings.Contains(a.Error, fmt.Sprintf(`{"attempt":%d}`, i+1)) {
			t.Errorf("attempt %d error %q lacks the response body", i+1, a.Error)
		}
	}
	if fmt.Sprint(codes) != "[500 502 503 200]" {
		t.Fatalf("history status codes = %v", codes)
	}
	// Each attempt carries its own timestamp, each verifiable.
	for i, r := range h.recv.requests() {
		ts := history[i].At
		if err := Verify([]string{h.ep.Secret}, r.header, r.body, ts, 0); err != nil {
			t.Errorf("attempt %d: %v", i+1, err)
		}
	}
}

func TestFailsAfterLastAttempt(t *testing.T) {
	h := newHarness(t, statuses(500))
	h.enqueue("d1")
	attempts := len(DefaultSchedule()) + 1
	for i := range attempts {
		d, _ := h.store.delivery("d1")
		if d.Status != StatusPending {
			t.Fatalf("before attempt %d: status %s", i+1, d.Status)
		}
		h.clock.Set(d.NextAttemptAt)
		h.runOnce()
	}
	d, history := h.store.delivery("d1")
	if d.Status != StatusFailed || d.Attempts != attempts || len(history) != attempts || !d.NextAttemptAt.IsZero() {
		t.Fatalf("after %d attempts: %+v, %d in history", attempts, d, len(history))
	}
	if d.LastStatusCode != 500 || !strings.HasPrefix(d.LastError, "HTTP 500") {
		t.Fatalf("last result %d %q", d.LastStatusCode, d.LastError)
	}
	if total := d.LastAttemptAt.Sub(d.CreatedAt); total != 75*time.Hour+35*time.Minute+5*time.Second {
		t.Fatalf("attempts spanned %s, want the specification's 75:35:05", total)
	}
	h.clock.Advance(1000 * time.Hour)
	if n := h.runOnce(); n != 0 {
		t.Fatal("a failed delivery was claimed again")
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	h := newHarness(t, func(n int, w http.ResponseWriter) {
		w.Header().Set("Retry-After", "120")
		w.WriteHeader(http.StatusTooManyRequests)
	})
	h.enqueue("d1")
	h.runOnce()
	d, hist := h.store.delivery("d1")
	if hist[0].RetryAfter != 2*time.Minute {
		t.Fatalf("RetryAfter = %s", hist[0].RetryAfter)
	}
	if want := d.LastAttemptAt.Add(2 * time.Minute); !d.NextAttemptAt.Equal(want) {
		t.Fatalf("next attempt %s, want %s (Retry-After beats the 5 s step)", d.NextAttemptAt, want)
	}
}

func TestGoneDisablesEndpoint(t *testing.T) {
	h := newHarness(t, statuses(410))
	h.enqueue("d1")
	h.enqueue("d2")
	h.worker.o.Concurrency = 1
	h.worker.o.Batch = 1
	h.runOnce()
	h.runOnce()
	if got := len(h.recv.requests()); got != 1 {
		t.Fatalf("receiver got %d requests after answering 410, want 1", got)
	}
	var first, second Delivery
	for _, id := range []string{"d1", "d2"} {
		if d, hist := h.store.delivery(id); len(hist) == 1 {
			first = d
		} else {
			second = d
		}
	}
	if first.Status != StatusFailed || first.LastStatusCode != 410 {
		t.Fatalf("the 410 delivery: %+v", first)
	}
	if second.Status != StatusFailed || second.LastError != "endpoint disabled" || second.Attempts != 0 {
		t.Fatalf("the delivery after 410: %+v", second)
	}
	if reason := h.store.disabled["ep_1"]; !strings.Contains(reason, "410") {
		t.Fatalf("endpoint disable reason = %q", reason)
	}
}

func TestEndpointDeleted(t *testing.T) {
	h := newHarness(t, nil)
	d := h.enqueue("d1")
	d.EndpointID = "ep_gone"
	h.store.putDelivery(d)
	h.runOnce()
	got, hist := h.store.delivery("d1")
	if got.Status != StatusFailed || got.LastError != "endpoint deleted" || len(hist) != 0 {
		t.Fatalf("delivery to a deleted endpoint: %+v, %d attempts", got, len(hist))
	}
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	followed := &receiver{}
	target := httptest.NewServer(followed)
	defer target.Close()
	h := newHarness(t, func(_ int, w http.ResponseWriter) {
		w.Header().Set("Location", target.URL)
		w.WriteHeader(http.StatusTemporaryRedirect)
	})
	h.enqueue("d1")
	h.runOnce()
	d, _ := h.store.delivery("d1")
	if d.Status != StatusPending || d.LastStatusCode != 307 || !strings.Contains(d.LastError, "redirects are not followed") {
		t.Fatalf("after a redirect: %+v", d)
	}
	if n := len(followed.requests()); n != 0 {
		t.Fatalf("the redirect target got %d requests", n)
	}
}

func TestResponseBodyTruncated(t *testing.T) {
	h := newHarness(t, func(_ int, w http.ResponseWriter) {
		w.WriteHeader(500)
		io.WriteString(w, strings.Repeat("x", 10*MaxResponseBody)+"TAIL")
	})
	h.enqueue("d1")
	h.runOnce()
	d, _ := h.store.delivery("d1")
	if n := strings.Count(d.LastError, "x"); n != MaxResponseBody {
		t.Fatalf("kept %d bytes of the body, want %d", n, MaxResponseBody)
	}
	if strings.Contains(d.LastError, "TAIL") {
		t.Fatal("read past the limit")
	}
}

func TestTimeout(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	h := newHarness(t, func(int, http.ResponseWriter) { <-release })
	h.worker.o.Sender = NewSender(SenderOptions{
		URLPolicy: URLPolicy{AllowInsecure: true, AllowPrivate: true},
		Now:       h.clock.Now,
		Timeout:   50 * time.Millisecond,
	})
	h.enqueue("d1")
	h.runOnce()
	d, hist := h.store.delivery("d1")
	if d.Status != StatusPending || hist[0].StatusCode != 0 || !strings.Contains(hist[0].Error, "Timeout") {
		t.Fatalf("after a timeout: %+v / %+v", d, hist[0])
	}
}

func TestPreviousSecretSignsDuringRotation(t *testing.T) {
	h := newHarness(t, nil)
	old, _ := NewSecret()
	h.ep.PreviousSecret = old
	h.ep.PreviousSecretExpiresAt = h.clock.Now().Add(time.Hour)
	h.store.putEndpoint(h.ep)
	h.enqueue("d1")
	h.runOnce()
	h.clock.Advance(2 * time.Hour)
	h.enqueue("d2")
	h.runOnce()
	reqs := h.recv.requests()
	if n := len(strings.Fields(reqs[0].header.Get(HeaderSignature))); n != 2 {
		t.Fatalf("during rotation: %d signatures, want 2", n)
	}
	ts := h.clock.Now().Add(-2 * time.Hour)
	if err := Verify([]string{old}, reqs[0].header, reqs[0].body, ts, 0); err != nil {
		t.Fatalf("a receiver still on the old secret: %v", err)
	}
	if n := len(strings.Fields(reqs[1].header.Get(HeaderSignature))); n != 1 {
		t.Fatalf("after rotation: %d signatures, want 1", n)
	}
	if err := Verify([]string{old}, reqs[1].header, reqs[1].body, h.clock.Now(), 0); !errors.Is(err, ErrNoMatch) {
		t.Fatalf("the expired secret still verifies: %v", err)
	}
}

func TestConcurrentDeliveries(t *testing.T) {
	h := newHarness(t, nil)
	for i := range 40 {
		h.enqueue(fmt.Sprintf("d%02d", i))
	}
	h.worker.o.Concurrency = 8
	if n := h.runOnce(); n != 40 {
		t.Fatalf("claimed %d, want 40", n)
	}
	if got := len(h.recv.requests()); got != 40 {
		t.Fatalf("receiver got %d requests, want 40", got)
	}
	for i := range 40 {
		if d, _ := h.store.delivery(fmt.Sprintf("d%02d", i)); d.Status != StatusDelivered {
			t.Fatalf("d%02d: %s", i, d.Status)
		}
	}
}

func TestHTTPS(t *testing.T) {
	recv := &receiver{}
	srv := httptest.NewTLSServer(recv)
	defer srv.Close()
	secret, _ := NewSecret()
	ep := &Endpoint{ID: "ep", OrganizationID: "org", URL: srv.URL, Secret: secret}
	d := &Delivery{ID: "d", EventID: "evt", Payload: []byte(`{}`)}
	tlsConfig := srv.Client().Transport.(*http.Transport).TLSClientConfig
	// https needs no AllowInsecure; the test server is on loopback, hence AllowPrivate.
	s := NewSender(SenderOptions{URLPolicy: URLPolicy{AllowPrivate: true}, TLSConfig: tlsConfig})
	if a := s.Send(context.Background(), ep, d); a.StatusCode != 204 || a.Error != "" {
		t.Fatalf("https delivery: %+v", a)
	}
	// An untrusted certificate fails.
	s = NewSender(SenderOptions{URLPolicy: URLPolicy{AllowPrivate: true}, TLSConfig: &tls.Config{}})
	if a := s.Send(context.Background(), ep, d); a.StatusCode != 0 || !strings.Contains(a.Error, "certificate") {
		t.Fatalf("untrusted certificate: %+v", a)
	}
}

func TestSSRFGuard(t *testing.T) {
	recv := &receiver{}
	srv := httptest.NewServer(recv)
	defer srv.Close()
	_, port, _ := strings.Cut(strings.TrimPrefix(srv.URL, "http://"), ":")
	secret, _ := NewSecret()
	d := &Delivery{ID: "d", EventID: "evt", Payload: []byte(`{}`)}
	tests := []struct {
		name   string
		policy URLPolicy
		url    string
	}{
		{"http without AllowInsecure", URLPolicy{AllowPrivate: true}, srv.URL},
		{"loopback address", URLPolicy{AllowInsecure: true}, srv.URL},
		{"name resolving to loopback", URLPolicy{AllowInsecure: true}, "http://localhost:" + port},
		{"IPv4-mapped loopback", URLPolicy{AllowInsecure: true}, "http://[::ffff:127.0.0.1]:" + port},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewSender(SenderOptions{URLPolicy: tt.policy, Timeout: 2 * time.Second})
			a := s.Send(context.Background(), &Endpoint{URL: tt.url, Secret: secret}, d)
			t.Log(a.Error)
			if a.StatusCode != 0 || !strings.Contains(a.Error, ErrForbiddenURL.Error()) {
				t.Fatalf("attempt = %+v, want refused", a)
			}
		})
	}
	if n := len(recv.requests()); n != 0 {
		t.Fatalf("the internal server got %d requests", n)
	}
}

func TestURLPolicyCheck(t *testing.T) {
	prod := URLPolicy{}
	dev := URLPolicy{AllowInsecure: true, AllowPrivate: true}
	tests := []struct {
		url       string
		prod, dev bool // accepted?
	}{
		{"https://hooks.example.com/thauth", true, true},
		{"https://93.184.215.14/x", true, true},
		{"https://[2606:4700::1111]/x", true, true},
		{"http://hooks.example.com/thauth", false, true},
		{"ftp://hooks.example.com/", false, false},
		{"hooks.example.com/thauth", false, false},
		{"https:///path", false, false},
		{"https://user:pw@hooks.example.com/", false, false},
		{"https://127.0.0.1/", false, true},
		{"https://[::1]/", false, true},
		{"https://10.1.2.3/", false, true},
		{"https://172.16.0.1/", false, true},
		{"https://192.168.1.1/", false, true},
		{"https://169.254.169.254/latest/meta-data/", false, true},
		{"https://100.64.0.1/", false, true},
		{"https://0.0.0.0/", false, true},
		{"https://[fd00::1]/", false, true},
		{"https://[fe80::1]/", false, true},
		{"https://[::ffff:10.0.0.1]/", false, true},
		{"https://[64:ff9b::a00:1]/", false, true},
		{"https://255.255.255.255/", false, true},
		{"https://224.0.0.1/", false, true},
		{"https://example.com/" + strings.Repeat("a", 2048), false, false},
	}
	for _, tt := range tests {
		for _, p := range []struct {
			name   string
			policy URLPolicy
			want   bool
		}{{"production", prod, tt.prod}, {"development", dev, tt.dev}} {
			err := p.policy.Check(tt.url)
			if (err == nil) != p.want {
				t.Errorf("%s policy, %.60s: %v, want accepted=%v", p.name, tt.url, err, p.want)
			}
			if err != nil && !errors.Is(err, ErrForbiddenURL) {
				t.Errorf("%s: error %v does not wrap ErrForbiddenURL", tt.url, err)
			}
		}
	}
}

func TestEndpointWants(t *testing.T) {
	tests := []struct {
		events []string
		typ    string
		want   bool
	}{
		{nil, "security.deny_spike", true},
		{[]string{"*"}, "security.deny_spike", true},
		{[]string{"security.*"}, "security.deny_spike", true},
		{[]string{"security.*"}, "securityx.deny_spike", false},
		{[]string{"security.deny_spike"}, "security.deny_spike", true},
		{[]string{"security.deny_spike"}, "security.error_spike", false},
		{[]string{"sec*"}, "security.error_spike", false},
	}
	for _, tt := range tests {
		e := Endpoint{Events: tt.events}
		if got := e.Wants(tt.typ); got != tt.want {
			t.Errorf("Events %v, Wants(%s) = %v", tt.events, tt.typ, got)
		}
	}
	if e := (Endpoint{Disabled: true}); e.Wants("x") {
		t.Error("a disabled endpoint wants events")
	}
}

func TestNewPayload(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 500, time.FixedZone("X", 3600))
	b, err := NewPayload("security.signin_lockout", at, map[string]string{"ip": "203.0.113.7"})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"type":"security.signin_lockout","timestamp":"2026-03-01T11:00:00.0000005Z","data":{"ip":"203.0.113.7"}}`
	if string(b) != want {
		t.Fatalf("payload = %s\nwant      %s", b, want)
	}
}

func TestRetryAfterParsing(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		v    string
		want time.Duration
	}{
		{"", 0},
		{"30", 30 * time.Second},
		{"0", 0},
		{"-5", 0},
		{"999999999999999999", MaxRetryAfter},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{"soon", 0},
	}
	for _, tt := range tests {
		if got := retryAfter(tt.v, now); got != tt.want {
			t.Errorf("retryAfter(%q) = %s, want %s", tt.v, got, tt.want)
		}
	}
}

func TestRunDeliversUntilCancelled(t *testing.T) {
	h := newHarness(t, nil)
	h.worker.o.PollInterval = 5 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.worker.Run(ctx) }()
	h.enqueue("d1")
	for i := 0; ; i++ {
		if d, _ := h.store.delivery("d1"); d.Status == StatusDelivered {
			break
		}
		if i == 2000 {
			t.Fatal("Run did not deliver")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
}
