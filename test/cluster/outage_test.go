package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/thauth/thauth/internal/postgres/pgtest"
	"github.com/thauth/thauth/sdk/go/thauth"
)

// TestOutage stops PostgreSQL under three nodes while a decision load runs, and starts it
// again on the same port (issue 3, "Availability under database failure"):
//   - during the outage every decision is still answered, correctly, from memory: not one
//     error; writes fail fast with 503 and code "unavailable"; /readyz says degraded (200,
//     so a load balancer keeps the nodes) and /healthz stays ok;
//   - once PostgreSQL is back, writes succeed through every node and every node converges,
//     without restarting any, and nothing written before the outage is lost.
func TestOutage(t *testing.T) {
	pg := startPG(t, false)
	proj := initPostgres(t, pg.url)
	var nodes []*node
	for i := range 3 {
		nodes = append(nodes, startNode(t, "n"+strconv.Itoa(i), nodeConfig{databaseURL: pg.url}))
	}
	ctx := testContext(t, 2*time.Minute)

	// A configuration and ten subjects that the load asks about.
	var subjects []subject
	for i := range 10 {
		subjects = append(subjects, subject{ID: "load-" + strconv.Itoa(i), Type: "user", Roles: []assignment{{Role: "reader"}}})
	}
	doc := &document{Version: 1,
		Features: []feature{{Name: "docs", Actions: []string{"read", "write"}}},
		Roles:    []role{{Name: "reader", Permissions: []permission{{Feature: "docs", Action: "read"}}}},
		Subjects: &subjects,
	}
	if _, err := nodes[0].client(proj.AdminKey).ApplyConfig(ctx, proj.ID, doc.JSON(), thauth.ContentTypeJSON, false); err != nil {
		t.Fatal(err)
	}
	cfg, err := nodes[0].client(proj.Decisions).GetConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	reader := cfg.RoleByName("reader").ID
	allSee := func(subject string) error {
		for _, n := range nodes {
			d, err := n.client(proj.Decisions).Check(ctx, thauth.CheckRequest{Subject: subject, Feature: "docs", Action: "read"})
			if err != nil {
				return fmt.Errorf("node %s: %w", n.name, err)
			}
			if !d.Allowed {
				return fmt.Errorf("node %s: %s not allowed yet: %w", n.name, subject, errNotYet)
			}
		}
		return nil
	}
	if err := eventually(10*time.Second, 20*time.Millisecond, func() error { return allSee("load-9") }); err != nil {
		t.Fatal(err)
	}

	load := startDecisionLoad(nodes, proj.Decisions, subjects, 4)
	time.Sleep(300 * time.Millisecond)

	// Outage.
	pg.stop(t, "fast")
	load.phase.Store(phaseOutage)
	outageStart := time.Now()
	t.Logf("PostgreSQL stopped (fast shutdown)")

	for _, n := range nodes {
		start := time.Now()
		_, err := n.client(proj.Decisions).UpsertSubject(ctx, thauth.UpsertSubjectRequest{
			SubjectID: "during-" + n.name, SubjectType: "user", RoleIDs: []string{reader}})
		took := time.Since(start)
		assertUnavailable(t, "upsert through "+n.name, err)
		if took > 10*time.Second {
			t.Errorf("upsert through %s took %v to fail", n.name, took)
		}
		t.Logf("upsert through %s during the outage: %v after %v", n.name, err, took.Round(time.Millisecond))
	}
	_, err = nodes[1].client(proj.AdminKey).ApplyConfig(ctx, proj.ID, doc.JSON(), thauth.ContentTypeJSON, false)
	assertUnavailable(t, "config apply", err)
	_, err = nodes[2].client(proj.AdminKey).CreateKey(ctx, proj.ID, thauth.CreateKeyRequest{Name: "outage", Scopes: []string{"decisions:read"}})
	assertUnavailable(t, "key creation", err)

	for _, n := range nodes {
		var last string
		err := eventually(10*time.Second, 100*time.Millisecond, func() error {
			res, err := do(ctx, http.MethodGet, n.URL()+"/readyz", "", nil)
			if err != nil {
				return err
			}
			last = body(res)
			var r struct{ Status, Store string }
			if res.Status != http.StatusOK || json.Unmarshal(res.Body, &r) != nil || r.Status != "degraded" || r.Store != "unreachable" {
				return errNotYet
			}
			return nil
		})
		if err != nil {
			t.Errorf("node %s: /readyz during the outage: %s, want 200 degraded (store unreachable)", n.name, last)
		}
		if res, err := do(ctx, http.MethodGet, n.URL()+"/healthz", "", nil); err != nil || res.Status != http.StatusOK {
			t.Errorf("node %s: /healthz during the outage: %v %s", n.name, err, body(res))
		}
	}
	if d := 2*time.Second - time.Since(outageStart); d > 0 {
		time.Sleep(d) // let the load run against the outage for a while
	}

	// Recovery, on the same port, without touching the nodes.
	pg.start(t)
	load.phase.Store(phaseRecovery)
	t.Logf("PostgreSQL started again after %v", time.Since(outageStart).Round(time.Millisecond))
	recoverStart := time.Now()
	for _, n := range nodes {
		subject := "after-" + n.name
		err := eventually(30*time.Second, 100*time.Millisecond, func() error {
			_, err := n.client(proj.Decisions).UpsertSubject(ctx, thauth.UpsertSubjectRequest{
				SubjectID: subject, SubjectType: "user", RoleIDs: []string{reader}})
			return err
		})
		if err != nil {
			t.Fatalf("upsert through %s after PostgreSQL came back: %v", n.name, err)
		}
		t.Logf("first successful upsert through %s %v after the restart", n.name, time.Since(recoverStart).Round(time.Millisecond))
	}
	for _, n := range nodes {
		if err := eventually(propagationBound, 10*time.Millisecond, func() error { return allSee("after-" + n.name) }); err != nil {
			t.Errorf("write through %s after the outage: %v", n.name, err)
		}
	}
	doc.Features[0].Description = "after the outage"
	doc.Subjects = nil // leave the subjects as they are
	applied, err := nodes[1].client(proj.AdminKey).ApplyConfig(ctx, proj.ID, doc.JSON(), thauth.ContentTypeJSON, false)
	if err != nil {
		t.Fatalf("apply after the outage: %v", err)
	}
	for _, n := range nodes {
		err := eventually(propagationBound, 10*time.Millisecond, func() error {
			cfg, err := n.client(proj.Decisions).GetConfig(ctx)
			if err != nil {
				return err
			}
			if cfg.Version != applied.Version {
				return fmt.Errorf("node %s: config version %s, want %s", n.name, cfg.Version, applied.Version)
			}
			return nil
		})
		if err != nil {
			t.Error(err)
		}
		err = eventually(10*time.Second, 100*time.Millisecond, func() error {
			res, err := do(ctx, http.MethodGet, n.URL()+"/readyz", "", nil)
			if err != nil {
				return err
			}
			if res.Status != http.StatusOK || !strings.Contains(string(res.Body), `"status":"ready"`) {
				return fmt.Errorf("%s", body(res))
			}
			return nil
		})
		if err != nil {
			t.Errorf("node %s: /readyz after the outage: %v", n.name, err)
		}
	}
	time.Sleep(200 * time.Millisecond)
	st := load.stop()
	t.Logf("decision load: %d checks before, %d during and %d after the outage; %d failed, %d wrong",
		st.requests[phaseBefore], st.requests[phaseOutage], st.requests[phaseRecovery], st.failed, st.wrong)
	if st.requests[phaseOutage] == 0 {
		t.Errorf("no decision was asked during the outage")
	}
	if st.failed > 0 || st.wrong > 0 {
		t.Errorf("decisions failed (%d) or were wrong (%d) around the outage; first: %s", st.failed, st.wrong, st.first)
	}
	// Nothing written before the outage was lost.
	exported, err := nodes[2].client(proj.AdminKey).ExportConfig(ctx, proj.ID, "json")
	if err != nil {
		t.Fatal(err)
	}
	var got document
	if err := json.Unmarshal(exported, &got); err != nil || got.Subjects == nil || len(*got.Subjects) != len(subjects)+len(nodes) {
		t.Errorf("export after the outage: %v; %d subjects, want %d", err, lenSubjects(&got), len(subjects)+len(nodes))
	}
}

func lenSubjects(d *document) int {
	if d.Subjects == nil {
		return 0
	}
	return len(*d.Subjects)
}

// assertUnavailable checks that a write failed with 503 and code "unavailable".
func assertUnavailable(t *testing.T, what string, err error) {
	t.Helper()
	var e *thauth.Error
	if !errors.As(err, &e) || e.StatusCode != http.StatusServiceUnavailable || e.Code != "unavailable" {
		t.Errorf("%s during the outage: %v, want 503 with code unavailable", what, err)
	}
}

// The phases of the decision load.
const (
	phaseBefore = iota
	phaseOutage
	phaseRecovery
	phases
)

// decisionLoad sends checks to every node in turn from a few goroutines, until stopped, and
// counts every answer that is not a 200 with the expected decision.
type decisionLoad struct {
	phase  atomic.Int32
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu sync.Mutex
	st loadStats
}

type loadStats struct {
	requests      [phases]int64
	failed, wrong int64
	first         string // the first failure
}

func startDecisionLoad(nodes []*node, key string, subjects []subject, workers int) *decisionLoad {
	ctx, cancel := context.WithCancel(context.Background())
	l := &decisionLoad{cancel: cancel}
	tr := &http.Transport{MaxIdleConnsPerHost: workers, Proxy: nil}
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	urls := make([]string, len(nodes))
	for i, n := range nodes {
		urls[i] = n.URL() + "/v1/check"
	}
	for w := range workers {
		l.wg.Go(func() {
			defer tr.CloseIdleConnections()
			var st loadStats
			for i := w; ctx.Err() == nil; i++ {
				s := subjects[i%len(subjects)].ID
				// read is allowed by the role, write is not granted: both are answers to check.
				action, want := "read", `"allowed":true,"reason":"role:reader"`
				if i%3 == 0 {
					action, want = "write", `"allowed":false,"reason":"default:deny"`
				}
				body := `{"subject":"` + s + `","feature":"docs","action":"` + action + `"}`
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, urls[i%len(urls)], strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+key)
				req.Header.Set("Content-Type", "application/json")
				phase := l.phase.Load()
				resp, err := client.Do(req)
				if ctx.Err() != nil {
					break
				}
				st.requests[phase]++
				if err != nil {
					st.failed++
					if st.first == "" {
						st.first = err.Error()
					}
					continue
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				switch {
				case err != nil || resp.StatusCode != http.StatusOK:
					st.failed++
					if st.first == "" {
						st.first = fmt.Sprintf("%s %d %s %v", req.URL, resp.StatusCode, b, err)
					}
				case !bytes.Contains(b, []byte(want)):
					st.wrong++
					if st.first == "" {
						st.first = fmt.Sprintf("%s: %s, want %s", body, b, want)
					}
				}
			}
			l.mu.Lock()
			for p := range phases {
				l.st.requests[p] += st.requests[p]
			}
			l.st.failed += st.failed
			l.st.wrong += st.wrong
			if l.st.first == "" {
				l.st.first = st.first
			}
			l.mu.Unlock()
		})
	}
	return l
}

// stop ends the load and returns what it counted.
func (l *decisionLoad) stop() loadStats {
	l.cancel()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.st
}

// TestStuckWriter holds a project's row lock from outside, as a stuck or very long writer
// would (a huge apply, a node frozen in the middle of a transaction): writes to the project
// must fail with 503 once they have waited the node's statement timeout, decisions must go
// on, and writes must succeed again as soon as the lock is released.
func TestStuckWriter(t *testing.T) {
	dbURL := pgtest.New(t)
	proj := initPostgres(t, dbURL)
	n := startNode(t, "n", nodeConfig{databaseURL: dbURL, args: []string{"--db-statement-timeout", "300ms"}})
	ctx := testContext(t, time.Minute)
	client := n.client(proj.Decisions)
	if _, err := client.UpsertSubject(ctx, thauth.UpsertSubjectRequest{SubjectID: "before", SubjectType: "user"}); err != nil {
		t.Fatal(err)
	}

	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SELECT 1 FROM projects WHERE id = $1 FOR UPDATE", proj.ID); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = client.UpsertSubject(ctx, thauth.UpsertSubjectRequest{SubjectID: "stuck", SubjectType: "user"})
	took := time.Since(start)
	var e *thauth.Error
	if !errors.As(err, &e) || e.StatusCode != http.StatusServiceUnavailable || e.Code != "unavailable" {
		t.Errorf("upsert while the project is locked: %v, want 503 unavailable", err)
	}
	if took > 10*time.Second {
		t.Errorf("upsert while the project is locked failed after %v (statement timeout 300ms)", took)
	}
	t.Logf("upsert while the project is locked: %v after %v", err, took.Round(time.Millisecond))
	if _, err := client.Check(ctx, thauth.CheckRequest{Subject: "before", Feature: "f", Action: "a"}); err != nil {
		t.Errorf("check while the project is locked: %v", err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := client.UpsertSubject(ctx, thauth.UpsertSubjectRequest{SubjectID: "after", SubjectType: "user"}); err != nil {
		t.Errorf("upsert after the lock was released: %v", err)
	}
}
