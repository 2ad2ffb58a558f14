// Command thauth-loadgen measures the decision throughput and latency of a Thauth server
// (POST /v1/check) over HTTP keep-alive connections, optionally next to a minimal net/http
// baseline that answers the same requests with a fixed decision.
//
//	thauth-loadgen -self -baseline                 start Thauth in-process, compare with the baseline
//	thauth-loadgen -setup -admin-key K -project P  apply a generated workload to a running server, then load it
//	thauth-loadgen -key K                          load a running server (workload applied earlier)
//
// It only ever sends to loopback addresses, and every run is bounded in time (-d, at most
// 10 minutes) and in requests (-n, at most 10 million).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/thauth/thauth/cmd/internal/serve"
	"github.com/thauth/thauth/internal/httpserver"
	"github.com/thauth/thauth/sdk/go/thauth"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

const (
	maxDuration = 10 * time.Minute
	maxRequests = 10_000_000
)

// config is the whole configuration of a run.
type config struct {
	url         string        // target base URL (THAUTH_URL); ignored with self
	key         string        // decisions:read key (THAUTH_KEY); not needed with setup or self
	adminKey    string        // admin key for setup (THAUTH_ADMIN_KEY)
	project     string        // project id for setup (THAUTH_PROJECT)
	connections int           // concurrent keep-alive connections, default 64
	duration    time.Duration // measured time per target, default 10s
	warmup      time.Duration // unmeasured time before, default 1s
	requests    int64         // measured requests per target at most, default (and cap) 10M
	setup       bool          // apply the generated workload first
	self        bool          // start Thauth in-process on a temporary data directory
	baseline    bool          // also load a minimal net/http handler and compare
	subjects    int           // workload size, default 1000
	tenants     int           // default 20
	seed        uint64        // workload seed, default 1
	bodies      int           // distinct check bodies, default 8192
	minRatio    float64       // fail when thauth/baseline throughput is below this (0: never)
}

func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("thauth-loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	envOr := func(k, def string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return def
	}
	c := &config{}
	fs.StringVar(&c.url, "url", envOr("THAUTH_URL", "http://127.0.0.1:8080"), "target `URL`, loopback only [$THAUTH_URL]")
	fs.StringVar(&c.key, "key", getenv("THAUTH_KEY"), "decisions:read API `key` [$THAUTH_KEY]")
	fs.StringVar(&c.adminKey, "admin-key", getenv("THAUTH_ADMIN_KEY"), "admin API `key` for -setup [$THAUTH_ADMIN_KEY]")
	fs.StringVar(&c.project, "project", getenv("THAUTH_PROJECT"), "project `id` for -setup [$THAUTH_PROJECT]")
	fs.IntVar(&c.connections, "c", 64, "concurrent keep-alive `connections`")
	fs.DurationVar(&c.duration, "d", 10*time.Second, "measured `duration` per target (at most 10m)")
	fs.DurationVar(&c.warmup, "warmup", time.Second, "unmeasured warm-up `duration` per target")
	fs.Int64Var(&c.requests, "n", maxRequests, "stop each target after this many measured `requests` (at most 10M)")
	fs.BoolVar(&c.setup, "setup", false, "apply a generated workload to -project with -admin-key and create a decisions key for the run")
	fs.BoolVar(&c.self, "self", false, "start Thauth in this process on a temporary data directory (implies -setup)")
	fs.BoolVar(&c.baseline, "baseline", false, "also load a minimal net/http handler answering the same requests, and compare")
	fs.IntVar(&c.subjects, "subjects", 1000, "workload: number of `subjects`")
	fs.IntVar(&c.tenants, "tenants", 20, "workload: number of `tenants`")
	fs.Uint64Var(&c.seed, "seed", 1, "workload `seed` (the same seed and sizes give the same workload)")
	fs.IntVar(&c.bodies, "bodies", 8192, "`number` of distinct check bodies to send")
	fs.Float64Var(&c.minRatio, "min-ratio", 0, "exit 1 when Thauth's throughput is below this `fraction` of the baseline's (with -baseline)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: thauth-loadgen [flags]\n\nLoads POST /v1/check of a Thauth server on a loopback address and reports checks/s and latency percentiles.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if c.connections < 1 || c.connections > 1024 {
		bad("-c must be between 1 and 1024")
	}
	if c.duration <= 0 || c.duration > maxDuration {
		bad("-d must be between 0 and %v", maxDuration)
	}
	if c.warmup < 0 || c.warmup > time.Minute {
		bad("-warmup must be between 0 and 1m")
	}
	if c.requests < 1 || c.requests > maxRequests {
		bad("-n must be between 1 and %d", maxRequests)
	}
	if c.subjects < 1 || c.subjects > 100_000 {
		bad("-subjects must be between 1 and 100000")
	}
	if c.tenants < 1 || c.tenants > 1000 {
		bad("-tenants must be between 1 and 1000")
	}
	if c.bodies < 1 || c.bodies > 1_000_000 {
		bad("-bodies must be between 1 and 1000000")
	}
	if c.minRatio < 0 || c.minRatio > 10 {
		bad("-min-ratio must be between 0 and 10")
	}
	if !c.self {
		if err := checkLoopback(c.url); err != nil {
			bad("-url: %v", err)
		}
		switch {
		case c.setup && (c.adminKey == "" || c.project == ""):
			bad("-setup needs -admin-key (THAUTH_ADMIN_KEY) and -project (THAUTH_PROJECT)")
		case !c.setup && c.key == "":
			bad("no key: pass -key (THAUTH_KEY), or -setup with an admin key, or -self")
		}
	}
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "\n  "))
	}
	c.url = strings.TrimRight(c.url, "/")
	return c, nil
}

// checkLoopback accepts only http URLs on a loopback address: the load generator must never
// send traffic anywhere else. Host names other than localhost are refused, not resolved.
func checkLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if u.Scheme != "http" {
		return fmt.Errorf("%q: only http:// URLs are supported", raw)
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%q is not a loopback address (127.0.0.0/8, ::1 or localhost); the load generator only targets this machine", host)
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cfg, err := parseConfig(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "thauth-loadgen: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := loadgen(ctx, cfg, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "thauth-loadgen: %v\n", err)
		return 1
	}
	return 0
}

func loadgen(ctx context.Context, cfg *config, stdout, stderr io.Writer) (err error) {
	w := newWorkload(cfg.seed, cfg.subjects, cfg.tenants)
	bodies, err := w.bodies(cfg.bodies)
	if err != nil {
		return err
	}
	target, key := cfg.url, cfg.key
	if cfg.self {
		log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		dir, err := os.MkdirTemp("", "thauth-loadgen-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		sc := serve.Defaults()
		sc.Observe.MetricsAddr = "" // a load generator's node needs no metrics listener
		// It measures the decision path, so the per-key rate limit (which it would exceed on
		// purpose) is off.
		sc.Limits.PerKey = httpserver.LimitOff
		sc.Addr, sc.DataDir = "127.0.0.1:0", dir
		srv, err := serve.Start(ctx, sc, log)
		if err != nil {
			return fmt.Errorf("starting thauth: %w", err)
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err = errors.Join(err, srv.Shutdown(sctx))
		}()
		ids, err := srv.Manage().Init(ctx, "loadgen", "loadgen")
		if err != nil {
			return fmt.Errorf("creating the project: %w", err)
		}
		target, cfg.adminKey, cfg.project, key = srv.URL(), ids.AdminKey, ids.Project.ID, ids.DecisionsKey
		fmt.Fprintf(stdout, "started thauth in-process at %s (data in %s)\n", target, dir)
	}
	if cfg.self || cfg.setup {
		admin := thauth.NewClient(target, cfg.adminKey, thauth.WithTimeout(5*time.Minute))
		doc, err := w.document()
		if err != nil {
			return err
		}
		start := time.Now()
		res, err := admin.ApplyConfig(ctx, cfg.project, doc, thauth.ContentTypeJSON, false)
		if err != nil {
			return fmt.Errorf("applying the workload: %w", err)
		}
		fmt.Fprintf(stdout, "setup: applied %d subjects, %d tenants, %d features, %d roles (%d KiB) in %v; version %s\n",
			len(w.subjects), len(w.tenants), len(features), len(w.roles), len(doc)>>10,
			time.Since(start).Round(time.Millisecond), res.Version)
		if !cfg.self {
			k, err := admin.CreateKey(ctx, cfg.project, thauth.CreateKeyRequest{
				Name: "loadgen-" + strconv.FormatInt(time.Now().Unix(), 10), Scopes: []string{"decisions:read"}})
			if err != nil {
				return fmt.Errorf("creating a decisions key: %w", err)
			}
			key = k.Token
			defer func() {
				rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if rerr := admin.RevokeKey(rctx, cfg.project, k.Key.ID); rerr != nil {
					fmt.Fprintf(stderr, "thauth-loadgen: revoking the run's key %s: %v\n", k.Key.ID, rerr)
				}
			}()
		}
	}
	// Fail fast with a clear message when the key or target is wrong.
	probe := thauth.NewClient(target, key, thauth.WithTimeout(10*time.Second))
	if _, err := probe.Check(ctx, thauth.CheckRequest{Subject: w.subjects[0].id, Feature: "billing", Action: "read"}); err != nil {
		return fmt.Errorf("probe check against %s failed: %w", target, err)
	}

	fmt.Fprintf(stdout, "load: %d connections, %v per target (+%v warm-up), %d distinct checks about %d subjects in %d tenants\n",
		cfg.connections, cfg.duration, cfg.warmup, len(bodies), len(w.subjects), len(w.tenants))
	opts := loadOptions{key: key, bodies: bodies, connections: cfg.connections, duration: cfg.duration,
		warmup: cfg.warmup, maxRequests: cfg.requests}
	opts.url = target
	results := []*result{runLoad(ctx, "thauth", opts)}
	if cfg.baseline && ctx.Err() == nil {
		burl, stopBaseline, err := startBaseline()
		if err != nil {
			return fmt.Errorf("starting the baseline: %w", err)
		}
		opts.url = burl
		results = append(results, runLoad(ctx, "baseline", opts))
		stopBaseline()
	}
	printResults(stdout, results)

	var errs []error
	for _, r := range results {
		if r.errors > 0 {
			errs = append(errs, fmt.Errorf("%s: %d of %d requests failed (first: %s)", r.name, r.errors, r.requests, r.firstErr))
		}
		if r.requests == 0 {
			errs = append(errs, fmt.Errorf("%s: no request completed", r.name))
		}
	}
	if len(results) == 2 && results[1].rate() > 0 {
		ratio := results[0].rate() / results[1].rate()
		fmt.Fprintf(stdout, "thauth/baseline throughput: %.1f%% (target ≥ 60%%)\n", ratio*100)
		if ratio < cfg.minRatio {
			errs = append(errs, fmt.Errorf("throughput ratio %.2f is below -min-ratio %.2f", ratio, cfg.minRatio))
		}
	}
	if ctx.Err() != nil {
		errs = append(errs, errors.New("interrupted"))
	}
	return errors.Join(errs...)
}

func printResults(w io.Writer, results []*result) {
	const row = "%-9s %9s %9s %8s %8s %8s %8s %7s %8s\n"
	fmt.Fprintf(w, row, "target", "requests", "checks/s", "p50", "p90", "p99", "max", "errors", "allowed")
	for _, r := range results {
		allowed := 0.0
		if ok := r.requests - r.errors; ok > 0 {
			allowed = 100 * float64(r.allowed) / float64(ok)
		}
		maxLat := time.Duration(0)
		if len(r.latencies) > 0 {
			maxLat = r.latencies[len(r.latencies)-1]
		}
		fmt.Fprintf(w, row, r.name, strconv.FormatInt(r.requests, 10), fmt.Sprintf("%.0f", r.rate()),
			ms(r.percentile(50)), ms(r.percentile(90)), ms(r.percentile(99)), ms(maxLat),
			strconv.FormatInt(r.errors, 10), fmt.Sprintf("%.1f%%", allowed))
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }
