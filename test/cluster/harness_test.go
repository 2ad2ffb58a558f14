package cluster

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/thauth/thauth/internal/manage"
	"github.com/thauth/thauth/internal/postgres"
	"github.com/thauth/thauth/internal/postgres/pgtest"
	"github.com/thauth/thauth/internal/sqlite"
	"github.com/thauth/thauth/sdk/go/thauth"
)

// moduleRoot is the repository root: tests run in their package's directory, two levels down.
var moduleRoot = func() string {
	dir, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		panic(err)
	}
	return dir
}()

func TestMain(m *testing.M) {
	code := m.Run()
	if binary.dir != "" {
		os.RemoveAll(binary.dir)
	}
	os.Exit(code)
}

// binary is the thauth binary of this run, built on first use.
var binary struct {
	once sync.Once
	dir  string // temporary directory holding it, removed by TestMain
	path string
	err  error
}

// thauthBinary builds cmd/thauth once per test run (with -race when the tests run with it,
// which also reuses the race-built packages the test binary was linked from) and returns
// its path.
func thauthBinary(tb testing.TB) string {
	tb.Helper()
	binary.once.Do(func() {
		dir, err := os.MkdirTemp("", "thauth-cluster-bin-")
		if err != nil {
			binary.err = err
			return
		}
		binary.dir = dir
		path := filepath.Join(dir, "thauth")
		args := []string{"build", "-o", path}
		if raceEnabled {
			args = append(args, "-race")
		}
		args = append(args, "./cmd/thauth")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, goCommand(), args...)
		cmd.Dir = moduleRoot
		if out, err := cmd.CombinedOutput(); err != nil {
			binary.err = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
			return
		}
		binary.path = path
	})
	if binary.err != nil {
		tb.Fatalf("building the thauth binary: %v", binary.err)
	}
	return binary.path
}

// goCommand finds the go command that runs this test.
func goCommand() string {
	if root := os.Getenv("GOROOT"); root != "" {
		if p := filepath.Join(root, "bin", "go"); fileExists(p) {
			return p
		}
	}
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "go"
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// childEnv is the environment of every subprocess: ours without THAUTH_* variables, so
// that nothing of the test's own configuration leaks into a node by accident.
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "THAUTH_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// ---------------------------------------------------------------------------------------
// Nodes

// nodeConfig says what a node serves from.
type nodeConfig struct {
	databaseURL string   // PostgreSQL (passed as THAUTH_DATABASE_URL); or
	dataDir     string   // the SQLite data directory
	args        []string // further flags of `thauth serve`
}

// node is one `thauth serve` subprocess. It can be killed and started again on the same
// store; its URL changes with every start (port 0).
type node struct {
	tb   testing.TB
	name string
	cfg  nodeConfig
	logs *ringLog

	mu     sync.Mutex
	cmd    *exec.Cmd
	url    string
	exited chan struct{} // closed when the current process has exited
}

// startNode starts a node and waits until it listens. It is stopped (SIGTERM) when tb ends,
// and its last log lines are printed if tb failed.
func startNode(tb testing.TB, name string, cfg nodeConfig) *node {
	tb.Helper()
	n := &node{tb: tb, name: name, cfg: cfg, logs: newRingLog(400)}
	tb.Cleanup(func() {
		n.stop()
		if tb.Failed() {
			tb.Logf("last log lines of node %s:\n%s", n.name, n.logs)
		}
	})
	n.start()
	return n
}

// URL returns the node's current base URL.
func (n *node) URL() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.url
}

// start starts the process and waits (at most a minute) until it listens.
func (n *node) start() {
	n.tb.Helper()
	// The benchmarks here drive nodes past any sane per-key rate limit on purpose, and the
	// convergence tests poll every node with keys it may not know yet (invalid keys, from
	// one address): limits and blocking would measure themselves, not the cluster.
	args := []string{"serve", "--addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--rate-limit-key", "off",
		"--rate-limit-auth-failures", "off", "--block-invalid-keys", "-1",
		"--log-format", "json", "--log-level", "info"}
	var extraEnv []string
	if n.cfg.databaseURL != "" {
		extraEnv = append(extraEnv, "THAUTH_DATABASE_URL="+n.cfg.databaseURL)
	} else {
		args = append(args, "--data-dir", n.cfg.dataDir)
	}
	args = append(args, n.cfg.args...)
	cmd := exec.Command(thauthBinary(n.tb), args...)
	cmd.Env = childEnv(extraEnv...)
	cmd.Stdout = n.logs
	cmd.SysProcAttr = childSysProcAttr()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		n.tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		n.tb.Fatalf("starting node %s: %v", n.name, err)
	}
	exited := make(chan struct{})
	addrs := make(chan string, 1)
	go func() {
		defer close(exited)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		found := false
		for sc.Scan() {
			line := sc.Bytes()
			n.logs.Write(append(line, '\n'))
			if !found && bytes.Contains(line, []byte(`"listening"`)) {
				var rec struct{ Msg, Addr string }
				if json.Unmarshal(line, &rec) == nil && rec.Msg == "listening" && rec.Addr != "" {
					found = true
					addrs <- rec.Addr
				}
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		_ = cmd.Wait()
	}()
	select {
	case addr := <-addrs:
		n.mu.Lock()
		n.cmd, n.url, n.exited = cmd, "http://"+addr, exited
		n.mu.Unlock()
	case <-exited:
		n.tb.Fatalf("node %s exited before listening:\n%s", n.name, n.logs)
	case <-time.After(time.Minute):
		_ = cmd.Process.Kill()
		<-exited
		n.tb.Fatalf("node %s did not listen within a minute:\n%s", n.name, n.logs)
	}
}

// kill sends SIGKILL — no shutdown, no flush — and waits for the process to be gone.
func (n *node) kill() {
	n.tb.Helper()
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	n.sendKill()
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		n.tb.Fatalf("node %s survived SIGKILL for 30s", n.name)
	}
}

// sendKill sends SIGKILL and returns at once (kill waits for the process to be gone).
func (n *node) sendKill() {
	n.mu.Lock()
	cmd := n.cmd
	n.mu.Unlock()
	if cmd != nil {
		_ = cmd.Process.Signal(syscall.SIGKILL)
	}
}

// stop asks the node to shut down gracefully (SIGTERM) and kills it after 20s.
func (n *node) stop() {
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-exited:
		return
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		n.tb.Errorf("node %s did not stop within 20s of SIGTERM; killing it", n.name)
		_ = cmd.Process.Kill()
		<-exited
	}
}

// client returns an SDK client of the node's current URL.
func (n *node) client(key string) *thauth.Client {
	return thauth.NewClient(n.URL(), key, thauth.WithTimeout(20*time.Second))
}

// accessLogLine marks the access log's lines.
var accessLogLine = []byte(`"msg":"http request"`)

// ringLog keeps the last lines written to it, except the access log's info lines; safe for
// concurrent use.
type ringLog struct {
	mu    sync.Mutex
	lines []string
	next  int
	full  bool
	part  []byte
}

func newRingLog(n int) *ringLog { return &ringLog{lines: make([]string, n)} }

func (r *ringLog) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.part = append(r.part, p...)
	for {
		i := bytes.IndexByte(r.part, '\n')
		if i < 0 {
			break
		}
		line := r.part[:i]
		r.part = r.part[i+1:]
		if bytes.Contains(line, accessLogLine) && !bytes.Contains(line, []byte(`"level":"WARN"`)) &&
			!bytes.Contains(line, []byte(`"level":"ERROR"`)) {
			continue // one line per request: they would drown the rest
		}
		r.lines[r.next] = string(line)
		r.next = (r.next + 1) % len(r.lines)
		r.full = r.full || r.next == 0
	}
	return len(p), nil
}

func (r *ringLog) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	if r.full {
		for _, l := range r.lines[r.next:] {
			b.WriteString(l + "\n")
		}
	}
	for _, l := range r.lines[:r.next] {
		b.WriteString(l + "\n")
	}
	return b.String()
}

// ---------------------------------------------------------------------------------------
// PostgreSQL clusters of a test's own

// pgCluster is a PostgreSQL server started by scripts/pg.sh for one test, which may stop
// and start it again on the same port. It is removed when the test ends.
type pgCluster struct {
	url   string // postgres:// URL of its database thauth_test
	dir   string // pg.sh's directory: data/, pg.log, port
	pgbin string
	port  string
}

// startPG starts a cluster of the test's own: durable (fsync and synchronous_commit on, as
// in production) or fast. It skips or fails like pgtest when PostgreSQL is not available.
func startPG(tb testing.TB, durable bool) *pgCluster {
	tb.Helper()
	pgtest.ServerURL(tb) // skip, or fail under THAUTH_REQUIRE_POSTGRES=1, like every PostgreSQL test
	env := childEnv()
	if durable {
		env = append(env, "PG_DURABLE=1")
	}
	cmd := exec.Command("bash", filepath.Join(moduleRoot, "scripts", "pg.sh"), "start")
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("scripts/pg.sh start: %v\n%s", err, stderr.String())
	}
	vars := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		k, v, ok := strings.Cut(strings.TrimPrefix(line, "export "), "=")
		if ok {
			vars[k] = strings.Trim(v, "'")
		}
	}
	c := &pgCluster{url: vars["THAUTH_TEST_DATABASE_URL"], dir: vars["THAUTH_TEST_PG_DIR"], pgbin: vars["THAUTH_TEST_PGBIN"]}
	if c.dir != "" {
		tb.Cleanup(func() {
			stop := exec.Command("bash", filepath.Join(moduleRoot, "scripts", "pg.sh"), "stop", c.dir)
			stop.Env = childEnv()
			if out, err := stop.CombinedOutput(); err != nil {
				tb.Logf("scripts/pg.sh stop: %v\n%s", err, out)
			}
		})
	}
	if c.url == "" || c.dir == "" || c.pgbin == "" {
		tb.Fatalf("scripts/pg.sh start printed no URL, directory or bin directory:\n%s", out)
	}
	port, err := os.ReadFile(filepath.Join(c.dir, "port"))
	if err != nil {
		tb.Fatal(err)
	}
	c.port = strings.TrimSpace(string(port))
	return c
}

// pgCtl runs pg_ctl on the cluster, as the postgres user when we are root (PostgreSQL
// refuses to run as root; pg.sh does the same).
func (c *pgCluster) pgCtl(args ...string) error {
	name := filepath.Join(c.pgbin, "pg_ctl")
	args = append([]string{"-D", filepath.Join(c.dir, "data")}, args...)
	if os.Geteuid() == 0 {
		args = append([]string{"-u", "postgres", "--", name}, args...)
		name = "runuser"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// stop stops the server: mode "fast" (sessions are terminated, then a clean shutdown) or
// "immediate" (no checkpoint: a crash, recovered from the WAL at the next start).
func (c *pgCluster) stop(tb testing.TB, mode string) {
	tb.Helper()
	if err := c.pgCtl("-m", mode, "-w", "-t", "60", "stop"); err != nil {
		tb.Fatal(err)
	}
}

// start starts the stopped server again with the options it had (port included), as
// pg_ctl restart would: they are in postmaster.opts.
func (c *pgCluster) start(tb testing.TB) {
	tb.Helper()
	opts, err := os.ReadFile(filepath.Join(c.dir, "data", "postmaster.opts"))
	if err != nil {
		tb.Fatal(err)
	}
	// The first word is the postgres binary; the rest are its options, already quoted.
	_, rest, _ := strings.Cut(strings.TrimSpace(string(opts)), " ")
	if err := c.pgCtl("-l", filepath.Join(c.dir, "pg.log"), "-w", "-t", "60", "-o", rest, "start"); err != nil {
		tb.Fatal(err)
	}
}

// ---------------------------------------------------------------------------------------
// Set-up

// project is a project with its two first keys (manage.Init).
type project struct {
	ID        string
	AdminKey  string
	Decisions string // decisions:read and subjects:write
}

// initPostgres migrates the database at databaseURL and creates a project in it.
func initPostgres(tb testing.TB, databaseURL string) project {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := postgres.Open(ctx, databaseURL, postgres.Options{})
	if err != nil {
		tb.Fatalf("opening PostgreSQL: %v", err)
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		tb.Fatalf("migrating PostgreSQL: %v", err)
	}
	res, err := manage.New(st, nil, manage.Options{}).Init(ctx, "cluster test", "cluster test")
	if err != nil {
		tb.Fatalf("init: %v", err)
	}
	return project{ID: res.Project.ID, AdminKey: res.AdminKey, Decisions: res.DecisionsKey}
}

// initSQLite creates the SQLite database in dir and a project in it.
func initSQLite(tb testing.TB, dir string) project {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := sqlite.Open(ctx, dir, sqlite.Options{})
	if err != nil {
		tb.Fatalf("opening SQLite: %v", err)
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		tb.Fatalf("migrating SQLite: %v", err)
	}
	res, err := manage.New(st, nil, manage.Options{}).Init(ctx, "cluster test", "cluster test")
	if err != nil {
		tb.Fatalf("init: %v", err)
	}
	return project{ID: res.Project.ID, AdminKey: res.AdminKey, Decisions: res.DecisionsKey}
}

// ---------------------------------------------------------------------------------------
// HTTP and polling

// rawResponse is an HTTP answer read whole.
type rawResponse struct {
	Status int
	Header http.Header
	Body   []byte
}

// rawClient sends requests the SDK has no field for (freshness tokens) and probes.
var rawClient = &http.Client{Timeout: 20 * time.Second}

// do sends method url with a bearer key (if any) and a JSON body (if not nil).
func do(ctx context.Context, method, url, key string, body any) (*rawResponse, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return nil, err
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := rawClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return &rawResponse{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// eventually calls fn every interval until it returns nil or timeout has passed, and returns
// its last error then.
func eventually(timeout, interval time.Duration, fn func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(interval)
	}
}

// errNotYet marks a condition that is not met yet (as opposed to a failure).
var errNotYet = errors.New("not yet")

// testContext returns a context bounded by d and cancelled when tb ends.
func testContext(tb testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	tb.Cleanup(cancel)
	return ctx
}

// runCLI runs the thauth binary with args (and extra environment variables) and returns
// its standard output; a non-zero exit fails tb.
func runCLI(tb testing.TB, env []string, args ...string) []byte {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, thauthBinary(tb), args...)
	cmd.Env = childEnv(env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("thauth %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}
