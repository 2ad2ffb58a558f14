package serve

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/thauth/thauth/internal/manage"
	"github.com/thauth/thauth/internal/postgres"
	"github.com/thauth/thauth/internal/postgres/pgtest"
	sdk "github.com/thauth/thauth/sdk/go/thauth"
)

// Nodes on one PostgreSQL database, started through Start as `thauth serve` starts them.

// logBuffer collects a node's log lines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startNode starts a node on dbURL; edit adjusts the configuration. It is shut down when
// the test ends, and its logs are printed if the test failed.
func startNode(t *testing.T, dbURL string, edit func(*Config)) (*Server, *logBuffer) {
	t.Helper()
	cfg := Defaults()
	cfg.Observe.MetricsAddr = "127.0.0.1:0"
	cfg.Addr = "127.0.0.1:0"
	cfg.DatabaseURL = dbURL
	cfg.SyncInterval = 50 * time.Millisecond
	if edit != nil {
		edit(&cfg)
	}
	logs := &logBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Start(ctx, cfg, log)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if t.Failed() {
			t.Logf("logs of node %s:\n%s", s.Addr(), logs)
		}
	})
	return s, logs
}

// migratedURL returns the URL of a fresh, migrated database.
func migratedURL(t *testing.T) string {
	t.Helper()
	u := pgtest.New(t)
	st := pgtest.Open(t, u, postgres.Options{})
	if err := st.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	st.Close()
	return u
}

// project creates a project with its keys and a configuration through node s.
func project(t *testing.T, s *Server) (projectID, adminKey, decisionsKey string) {
	t.Helper()
	ctx := t.Context()
	res, err := s.Manage().Init(ctx, "Acme", "app")
	if err != nil {
		t.Fatal(err)
	}
	const doc = `version: 1
features:
  - {name: reports, actions: [read]}
roles:
  - name: analyst
    permissions: [{feature: reports, action: read}]
`
	if _, err := s.Manage().ApplyConfig(ctx, res.Project.ID, []byte(doc), manage.FormatYAML, false); err != nil {
		t.Fatal(err)
	}
	return res.Project.ID, res.AdminKey, res.DecisionsKey
}

// grant makes subject an analyst through node s's HTTP API and returns the write's
// revision token.
func grant(t *testing.T, s *Server, key, subject string) string {
	t.Helper()
	c := sdk.NewClient(s.URL(), key)
	cfg, err := c.GetConfig(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.UpsertSubject(t.Context(), sdk.UpsertSubjectRequest{
		SubjectID: subject, SubjectType: "user", RoleIDs: []string{cfg.RoleByName("analyst").ID}})
	if err != nil {
		t.Fatalf("upsert through %s: %v", s.Addr(), err)
	}
	if res.Revision == "" {
		t.Fatal("upsert answer without a revision token")
	}
	return res.Revision
}

func allowed(t *testing.T, s *Server, key, subject, fresh string) (bool, error) {
	t.Helper()
	d, err := sdk.NewClient(s.URL(), key).Check(t.Context(), sdk.CheckRequest{
		Subject: subject, Feature: "reports", Action: "read", AtLeastAsFresh: fresh})
	if err != nil {
		return false, err
	}
	return d.Allowed, nil
}

// TestFreshnessAcrossNodes: a write accepted by node A, then a check on node B carrying the
// write's token. B neither polls (1h) nor listens, so only the token makes it catch up.
func TestFreshnessAcrossNodes(t *testing.T) {
	dbURL := migratedURL(t)
	a, _ := startNode(t, dbURL, nil)
	pid, _, key := project(t, a)
	b, _ := startNode(t, dbURL, func(c *Config) {
		c.SyncInterval = time.Hour
		c.PollOnly = true
		c.FreshnessWait = 300 * time.Millisecond
	})

	tok := grant(t, a, key, "user:carol")
	if ok, err := allowed(t, b, key, "user:carol", ""); err != nil || ok {
		t.Fatalf("B without a token: allowed=%v err=%v; B should still be behind (the test proves nothing otherwise)", ok, err)
	}
	if ok, err := allowed(t, b, key, "user:carol", tok); err != nil || !ok {
		t.Errorf("B with A's token: allowed=%v err=%v, want allowed", ok, err)
	}
	// Batches too.
	tok = grant(t, a, key, "user:dave")
	res, err := sdk.NewClient(b.URL(), key).CheckBatch(t.Context(), sdk.BatchRequest{
		Subject: "user:dave", AtLeastAsFresh: tok, Checks: []sdk.BatchItem{{Feature: "reports", Action: "read"}}})
	if err != nil || len(res) != 1 || !res[0].Allowed {
		t.Errorf("batch on B with A's token: %+v, %v", res, err)
	}

	// A token beyond anything written: 503 with Retry-After after B's bounded wait.
	future := revisionTokenForTest(t, pid, 1_000_000)
	start := time.Now()
	_, err = allowed(t, b, key, "user:carol", future)
	var se *sdk.Error
	if !errors.As(err, &se) || !errors.Is(err, sdk.ErrUnavailable) || se.RetryAfter != time.Second ||
		!strings.Contains(se.Message, "has not caught up") {
		t.Errorf("future token: %v", err)
	}
	if waited := time.Since(start); waited < 300*time.Millisecond {
		t.Errorf("answered after %v, before the 300ms wait was over", waited)
	}
	// A token of another project is a 400.
	other, _, _ := project(t, a)
	_, err = allowed(t, b, key, "user:carol", revisionTokenForTest(t, other, 1))
	if !errors.Is(err, sdk.ErrBadRequest) {
		t.Errorf("foreign token: %v, want a 400", err)
	}
}

// revisionTokenForTest builds a token the way the server does (docs/freshness.md).
func revisionTokenForTest(t *testing.T, projectID string, rev int64) string {
	t.Helper()
	return "r1." + base64.RawURLEncoding.EncodeToString([]byte(projectID+":"+strconv.FormatInt(rev, 10)))
}

// TestNotificationsWakeFollowers: with polling at one hour, only PostgreSQL's change
// notifications can bring a write of node A to node C.
func TestNotificationsWakeFollowers(t *testing.T) {
	dbURL := migratedURL(t)
	a, _ := startNode(t, dbURL, nil)
	_, _, key := project(t, a)
	c, _ := startNode(t, dbURL, func(c *Config) { c.SyncInterval = time.Hour })
	for i, subject := range []string{"user:n1", "user:n2", "user:n3"} {
		grant(t, a, key, subject)
		start := time.Now()
		for {
			ok, err := allowed(t, c, key, subject, "")
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				t.Logf("write %d visible on the other node after %v", i, time.Since(start).Round(time.Millisecond))
				break
			}
			if time.Since(start) > 10*time.Second {
				t.Fatalf("write %d not visible on the other node after 10s: notifications do not wake it", i)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
}

// proxy is a TCP proxy in front of the test server that a test can cut (connections
// closed, new ones refused) and restore, to play a database outage.
type proxy struct {
	t      *testing.T
	target string

	mu     sync.Mutex
	addr   string
	ln     net.Listener
	conns  []net.Conn
	frozen bool // connections stay open but nothing is forwarded
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	p := &proxy{t: t, target: target, addr: "127.0.0.1:0"}
	p.restore()
	t.Cleanup(p.cut)
	return p
}

// restore listens again, on the same port.
func (p *proxy) restore() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatal(err)
	}
	p.ln, p.addr = ln, ln.Addr().String()
	go p.serve(ln)
}

func (p *proxy) serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		go func() { p.copy(s, c); s.Close() }()
		go func() { p.copy(c, s); c.Close() }()
	}
}

// copy forwards src to dst, holding data back while the proxy is frozen.
func (p *proxy) copy(dst io.Writer, src io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		for p.isFrozen() {
			time.Sleep(5 * time.Millisecond)
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *proxy) isFrozen() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.frozen
}

// freeze makes the database behind the proxy stop answering without closing anything, as
// a frozen host does; thaw undoes it.
func (p *proxy) freeze(frozen bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.frozen = frozen
}

// cut stops listening and closes every connection.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// via returns databaseURL with its host and port replaced by addr.
func via(t *testing.T, databaseURL, addr string) string {
	t.Helper()
	u, err := url.Parse(databaseURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = addr
	return u.String()
}

type readiness struct {
	Status    string            `json:"status"`
	Store     string            `json:"store"`
	Staleness float64           `json:"snapshot_staleness_seconds"`
	Checks    map[string]string `json:"checks"`
}

func readyz(t *testing.T, s *Server) (int, readiness) {
	t.Helper()
	resp, err := http.Get(s.URL() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r readiness
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, r
}

// TestDatabaseOutage: while a node's database is unreachable, its decisions go on from
// memory, /readyz says degraded (200), writes fail fast with 503, the log shows the
// staleness; when the database returns, the node recovers on its own and catches up with
// what other nodes wrote meanwhile.
func TestDatabaseOutage(t *testing.T) {
	dbURL := migratedURL(t)
	server, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, server.Host)
	other, _ := startNode(t, dbURL, nil) // a node whose database stays reachable
	_, _, key := project(t, other)
	node, logs := startNode(t, via(t, dbURL, p.addr), nil)
	grant(t, other, key, "user:before")
	waitAllowed(t, node, key, "user:before")

	if code, r := readyz(t, node); code != 200 || r.Status != "ready" || r.Store != "ok" {
		t.Fatalf("readyz before the outage: %d %+v", code, r)
	}

	p.cut()
	time.Sleep(300 * time.Millisecond) // a few follow ticks fail
	if code, r := readyz(t, node); code != 200 || r.Status != "degraded" || r.Store != "unreachable" || r.Checks["engine"] != "ok" {
		t.Errorf("readyz during the outage: %d %+v", code, r)
	}
	for range 20 {
		if ok, err := allowed(t, node, key, "user:before", ""); err != nil || !ok {
			t.Fatalf("check during the outage: allowed=%v err=%v", ok, err)
		}
	}
	c := sdk.NewClient(node.URL(), key)
	start := time.Now()
	_, err = c.UpsertSubject(t.Context(), sdk.UpsertSubjectRequest{SubjectID: "user:x", SubjectType: "user"})
	var se *sdk.Error
	if !errors.As(err, &se) || se.StatusCode != 503 || se.Code != "unavailable" || !strings.HasPrefix(se.Message, "database") {
		t.Errorf("write during the outage: %v", err)
	}
	if took := time.Since(start); took > 11*time.Second {
		t.Errorf("the failing write took %v", took)
	}
	// Another node keeps writing meanwhile.
	grant(t, other, key, "user:during")
	time.Sleep(200 * time.Millisecond)
	if code, r := readyz(t, node); code != 200 || r.Staleness < 0.4 {
		t.Errorf("staleness during the outage: %d %+v", code, r)
	}
	if !strings.Contains(logs.String(), "sync with the store failed") || !strings.Contains(logs.String(), "snapshot_staleness=") {
		t.Errorf("no warning with the staleness in the log")
	}

	p.restore()
	waitAllowed(t, node, key, "user:during") // caught up with the other node's write
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := c.UpsertSubject(t.Context(), sdk.UpsertSubjectRequest{SubjectID: "user:after", SubjectType: "user"})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("writes did not recover: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, r := readyz(t, node); code != 200 || r.Status != "ready" || r.Staleness > 1 {
		t.Errorf("readyz after the outage: %d %+v", code, r)
	}
	if !strings.Contains(logs.String(), "sync with the store recovered") {
		t.Errorf("no recovery line in the log")
	}
}

// TestFrozenDatabase: a database that stops answering without closing its connections
// (TCP stays up, nothing comes back) cannot hold a write beyond its request deadline, nor
// a fresh check beyond its bounded wait; decisions go on, and the node recovers when the
// database answers again.
func TestFrozenDatabase(t *testing.T) {
	t.Parallel()
	dbURL := migratedURL(t)
	server, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, server.Host)
	other, _ := startNode(t, dbURL, nil)
	pid, _, key := project(t, other)
	node, _ := startNode(t, via(t, dbURL, p.addr), func(c *Config) { c.FreshnessWait = 500 * time.Millisecond })
	grant(t, other, key, "user:before")
	waitAllowed(t, node, key, "user:before")

	p.freeze(true)
	c := sdk.NewClient(node.URL(), key, sdk.WithTimeout(time.Minute)) // to see the server's answer
	start := time.Now()
	_, err = c.UpsertSubject(t.Context(), sdk.UpsertSubjectRequest{SubjectID: "user:x", SubjectType: "user"})
	took := time.Since(start)
	var se *sdk.Error
	if !errors.As(err, &se) || se.StatusCode != 503 || se.Code != "unavailable" || !strings.HasPrefix(se.Message, "database") {
		t.Errorf("write to a frozen database: %v", err)
	}
	if took > 10*time.Second {
		t.Errorf("the write took %v: the 8s request deadline did not hold", took)
	}
	t.Logf("write to the frozen database failed after %v: %v", took.Round(time.Millisecond), err)
	if ok, err := allowed(t, node, key, "user:before", ""); err != nil || !ok {
		t.Errorf("check with the database frozen: allowed=%v err=%v", ok, err)
	}
	// A token the node has not reached: 503 after the bounded wait, even though a sync of
	// the project may be stuck on the frozen database.
	tok := grant(t, other, key, "user:during")
	start = time.Now()
	_, err = allowed(t, node, key, "user:during", tok)
	if !errors.Is(err, sdk.ErrUnavailable) {
		t.Errorf("fresh check with the database frozen: %v", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("fresh check took %v, want about the 500ms wait", took)
	}
	_ = pid

	p.freeze(false)
	if ok, err := allowed(t, node, key, "user:during", tok); err != nil || !ok {
		t.Errorf("fresh check after the thaw: allowed=%v err=%v", ok, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := c.UpsertSubject(t.Context(), sdk.UpsertSubjectRequest{SubjectID: "user:after", SubjectType: "user"})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("writes did not recover: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitAllowed waits up to 10s until subject may read reports on node s.
func waitAllowed(t *testing.T, s *Server, key, subject string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok, err := allowed(t, s, key, subject, "")
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not allowed on %s within 10s (last error %v)", subject, s.Addr(), err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
