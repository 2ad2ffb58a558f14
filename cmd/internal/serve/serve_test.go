package serve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/thauth/thauth/internal/postgres/pgtest"
)

func TestValidate(t *testing.T) {
	if ps := Defaults().Validate(); ps != nil {
		t.Fatalf("defaults are invalid: %v", ps)
	}
	c := Config{Addr: "nope", SyncInterval: time.Nanosecond, KeyUsageFlushInterval: time.Second,
		ShutdownTimeout: -time.Second, ReadHeaderTimeout: time.Second, ReadTimeout: time.Second,
		WriteTimeout: time.Second, IdleTimeout: time.Second, MaxHeaderBytes: 1}
	var fields []string
	for _, p := range c.Validate() {
		fields = append(fields, p.Field)
	}
	want := []string{"Addr", "DataDir", "SyncInterval", "ShutdownTimeout", "MaxHeaderBytes", "SessionIdleTimeout", "SessionLifetime"}
	if d := cmp.Diff(want, fields); d != "" {
		t.Errorf("problem fields (-want +got):\n%s", d)
	}
}

func TestLoopbackAddr(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8080": true, "[::1]:8080": true, "localhost:8080": true, "127.0.0.2:0": true,
		":8080": false, "0.0.0.0:8080": false, "[::]:8080": false, "192.168.1.10:8080": false,
		"example.com:8080": false, "nonsense": false,
	} {
		if got := loopbackAddr(addr); got != want {
			t.Errorf("loopbackAddr(%q) = %v, want %v", addr, got, want)
		}
	}
}

func TestExposed(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8080": false, "[::1]:8080": false, "127.0.0.2:1": false,
		"0.0.0.0:8080": true, "[::]:8080": true, "192.168.1.10:8080": true,
	} {
		a, err := net.ResolveTCPAddr("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := exposed(a); got != want {
			t.Errorf("exposed(%s) = %v, want %v", addr, got, want)
		}
	}
}

func TestStartPostgresSchema(t *testing.T) {
	dbURL := pgtest.New(t)
	ctx := context.Background()
	cfg := Defaults()
	cfg.Observe.MetricsAddr = "127.0.0.1:0"
	cfg.Addr = "127.0.0.1:0"
	cfg.DataDir = ""
	cfg.DatabaseURL = dbURL

	_, err := Start(ctx, cfg, nil)
	var behind *SchemaBehindError
	if !errors.As(err, &behind) || behind.Current != 0 || behind.Latest < 1 {
		t.Fatalf("Start on an empty database: %v, want a *SchemaBehindError from 0", err)
	}
	if !strings.Contains(err.Error(), "thauth migrate --database-url") {
		t.Errorf("error does not say what to run: %v", err)
	}

	cfg.AutoMigrate = true
	s, err := Start(ctx, cfg, nil)
	if err != nil {
		t.Fatalf("Start with AutoMigrate: %v", err)
	}
	if !s.Engine().Ready() {
		t.Error("engine not ready after Start")
	}
	if err := s.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}

	cfg.AutoMigrate = false // migrated now: starts without it
	s, err = Start(ctx, cfg, nil)
	if err != nil {
		t.Fatalf("Start on a migrated database: %v", err)
	}
	if err := s.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

func TestRedact(t *testing.T) {
	const u = "postgres://thauth:s3cr3t-pw@db.example:5432/thauth?sslmode=disable"
	err := Redact(fmt.Errorf("boom: %s / password s3cr3t-pw: %w", u, context.Canceled), u)
	if strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), u) {
		t.Errorf("redacted error still holds the secret: %v", err)
	}
	if !errors.Is(err, context.Canceled) {
		t.Error("redaction lost the error chain")
	}
	cfg := Defaults()
	cfg.Observe.MetricsAddr = "127.0.0.1:0"
	cfg.DatabaseURL = "postgres://thauth:s3cr3t-pw@127.0.0.1:1/thauth?connect_timeout=1"
	_, err = Start(context.Background(), cfg, nil)
	if err == nil || strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("Start on an unreachable database: %v (want an error without the password)", err)
	}
}
