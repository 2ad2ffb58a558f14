package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/thauth/thauth/sdk/go/thauth"
)

// Crash safety (issue 3, "Durability"): a node is killed with SIGKILL in the middle of a
// stream of writes — subject upserts from two clients and configuration applies from a
// third — and started again on the same store. Every write it acknowledged must be there,
// in the exported document and in decisions, and the configuration must be exactly one
// generation: the last acknowledged one, or the one that was in flight at the kill.

// TestCrashSQLite kills a node on SQLite twice. It needs nothing but the binary, so it
// always runs.
func TestCrashSQLite(t *testing.T) {
	dir := t.TempDir()
	proj := initSQLite(t, dir)
	n := startNode(t, "sqlite", nodeConfig{dataDir: dir})
	c := newCrashRun(t, proj, n)
	for round := 1; round <= 2; round++ {
		c.writeAndKill(round, n.kill)
		n.start()
		c.verify(round)
	}
}

// TestCrashPostgres kills a node on a durable PostgreSQL cluster of its own (fsync and
// synchronous_commit on); in the second round PostgreSQL crashes at the same moment (an
// immediate shutdown: no checkpoint, recovery from the WAL at the next start). The schema
// and the project are created with `thauth migrate` and `thauth init`, as an operator would.
func TestCrashPostgres(t *testing.T) {
	pg := startPG(t, true)
	assertDurable(t, pg.url)
	env := []string{"THAUTH_DATABASE_URL=" + pg.url}
	runCLI(t, env, "migrate")
	var ids struct {
		ProjectID    string `json:"project_id"`
		AdminKey     string `json:"admin_key"`
		DecisionsKey string `json:"decisions_key"`
	}
	if err := json.Unmarshal(runCLI(t, env, "init", "--org", "crash", "--project", "crash", "--json"), &ids); err != nil {
		t.Fatalf("thauth init --json: %v", err)
	}
	proj := project{ID: ids.ProjectID, AdminKey: ids.AdminKey, Decisions: ids.DecisionsKey}
	n := startNode(t, "postgres", nodeConfig{databaseURL: pg.url})
	c := newCrashRun(t, proj, n)

	c.writeAndKill(1, n.kill)
	n.start()
	c.verify(1)

	c.writeAndKill(2, func() {
		n.sendKill()
		pg.stop(t, "immediate")
		n.kill()
	})
	pg.start(t)
	n.start()
	c.verify(2)
}

// assertDurable checks the premise of the PostgreSQL crash test: the server really runs
// with the durable settings.
func assertDurable(t *testing.T, url string) {
	t.Helper()
	ctx := testContext(t, 30*time.Second)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, setting := range []string{"fsync", "synchronous_commit", "full_page_writes"} {
		var v string
		if err := conn.QueryRow(ctx, "SHOW "+setting).Scan(&v); err != nil {
			t.Fatal(err)
		}
		if v != "on" {
			t.Fatalf("the durable cluster has %s=%s", setting, v)
		}
	}
}

// crashRun is the state of a crash test: what the node acknowledged so far.
type crashRun struct {
	t       *testing.T
	proj    project
	n       *node
	roleIDs map[string]string // r1 and r2, stable across generations
	rng     *rand.Rand

	mu      sync.Mutex
	lastGen int               // the last acknowledged generation
	acked   map[string]string // subject id → its role, acknowledged
	seq     int               // subjects numbered so far
}

// newCrashRun applies generation 1 and learns the ids of the roles subjects get.
func newCrashRun(t *testing.T, proj project, n *node) *crashRun {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	c := &crashRun{t: t, proj: proj, n: n, acked: map[string]string{}, rng: rand.New(rand.NewPCG(seed, 3))}
	ctx := testContext(t, 30*time.Second)
	if _, err := n.client(proj.AdminKey).ApplyConfig(ctx, proj.ID, generationDocument(1).JSON(), thauth.ContentTypeJSON, false); err != nil {
		t.Fatalf("applying generation 1: %v", err)
	}
	c.lastGen = 1
	cfg, err := n.client(proj.Decisions).GetConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c.roleIDs = map[string]string{}
	for _, name := range []string{"r1", "r2"} {
		r := cfg.RoleByName(name)
		if r == nil {
			t.Fatalf("role %s missing after applying generation 1", name)
		}
		c.roleIDs[name] = r.ID
	}
	return c
}

// writeAndKill streams writes until enough are acknowledged, then calls kill in the middle
// of the stream and waits for the writers to notice.
func (c *crashRun) writeAndKill(round int, kill func()) {
	t := c.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var (
		killed          atomic.Bool
		upserts, gens   atomic.Int64
		wg              sync.WaitGroup
		firstGen, first = c.lastGen + 1, c.seq
	)
	failed := func(what string, err error) {
		if !killed.Load() && ctx.Err() == nil {
			t.Errorf("round %d: %s failed before the kill: %v", round, what, err)
		}
	}
	admin := c.n.client(c.proj.AdminKey)
	wg.Go(func() {
		for g := firstGen; ctx.Err() == nil; g++ {
			if _, err := admin.ApplyConfig(ctx, c.proj.ID, generationDocument(g).JSON(), thauth.ContentTypeJSON, false); err != nil {
				failed(fmt.Sprintf("applying generation %d", g), err)
				return
			}
			c.mu.Lock()
			c.lastGen = g
			c.mu.Unlock()
			gens.Add(1)
		}
	})
	for range 2 {
		client := c.n.client(c.proj.Decisions)
		wg.Go(func() {
			for ctx.Err() == nil {
				c.mu.Lock()
				c.seq++
				i := c.seq
				c.mu.Unlock()
				id, r := fmt.Sprintf("s%05d", i), []string{"r1", "r2"}[i%2]
				_, err := client.UpsertSubject(ctx, thauth.UpsertSubjectRequest{
					SubjectID: id, SubjectType: "user", RoleIDs: []string{c.roleIDs[r]}})
				if err != nil {
					failed("upserting "+id, err)
					return
				}
				c.mu.Lock()
				c.acked[id] = r
				c.mu.Unlock()
				upserts.Add(1)
			}
		})
	}
	// Kill once the stream is well under way, at a random moment of it.
	err := eventually(30*time.Second, 2*time.Millisecond, func() error {
		if upserts.Load() < 40 || gens.Load() < 3 {
			return fmt.Errorf("%d upserts and %d applies acknowledged after 30s", upserts.Load(), gens.Load())
		}
		return nil
	})
	if err != nil {
		t.Errorf("round %d: %v", round, err)
	}
	time.Sleep(time.Duration(c.rng.IntN(20_000)) * time.Microsecond)
	killed.Store(true)
	kill()
	wg.Wait()
	c.mu.Lock()
	t.Logf("round %d: killed after %d acknowledged upserts (subjects %d..%d) and %d applies (generation %d acknowledged)",
		round, upserts.Load(), first+1, c.seq, gens.Load(), c.lastGen)
	c.mu.Unlock()
}

// verify checks, on the restarted node, that every acknowledged write is there and that the
// configuration is one whole generation.
func (c *crashRun) verify(round int) {
	t := c.t
	t.Helper()
	ctx := testContext(t, time.Minute)
	raw, err := c.n.client(c.proj.AdminKey).ExportConfig(ctx, c.proj.ID, "json")
	if err != nil {
		t.Fatalf("round %d: export after restart: %v", round, err)
	}
	var doc document
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("round %d: export: %v", round, err)
	}
	g, err := generationOf(&doc)
	if err != nil {
		t.Errorf("round %d: configuration half applied: %v", round, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// Applies are sequential: at most the one after the last acknowledged was in flight.
	if g != c.lastGen && g != c.lastGen+1 {
		t.Errorf("round %d: the node restarted at generation %d; the last acknowledged was %d", round, g, c.lastGen)
	}
	c.lastGen = max(c.lastGen, g)

	exported := map[string][]assignment{}
	if doc.Subjects != nil {
		for _, s := range *doc.Subjects {
			exported[s.ID] = s.Roles
		}
	}
	gen := fmt.Sprintf("gen-%d", g)
	client := c.n.client(c.proj.Decisions)
	missing := 0
	for id, r := range c.acked {
		if a := exported[id]; len(a) != 1 || a[0] != (assignment{Role: r}) {
			if missing++; missing <= 10 {
				t.Errorf("round %d: acknowledged subject %s with role %s is exported as %+v", round, id, r, a)
			}
			continue
		}
		res, err := client.CheckBatch(ctx, thauth.BatchRequest{Subject: id, Checks: []thauth.BatchItem{
			{Feature: "base", Action: "read"}, {Feature: "base", Action: "write"}, {Feature: gen, Action: "read"}}})
		if err != nil {
			t.Fatalf("round %d: checks of %s: %v", round, id, err)
		}
		want := []string{"role:r1", "default:deny", "role:r1"}
		if r == "r2" {
			want = []string{"default:deny", "role:r2", "default:deny"}
		}
		for i, x := range res {
			if x.Reason != want[i] || x.Allowed != (want[i] != "default:deny") {
				t.Errorf("round %d: %s %s.%s: allowed=%v reason=%s, want %s", round, id, x.Feature, x.Action, x.Allowed, x.Reason, want[i])
			}
		}
	}
	if missing > 0 {
		t.Errorf("round %d: %d of %d acknowledged subjects lost", round, missing, len(c.acked))
	}
	t.Logf("round %d: after restart: generation %d, all %d acknowledged subjects present", round, g, len(c.acked))
}
