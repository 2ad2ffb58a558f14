package postgres_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/postgres"
	"github.com/thauth/thauth/internal/postgres/pgtest"
)

func TestSettings(t *testing.T) {
	const base = "postgres://thauth@db.example:5432/thauth?sslmode=disable"
	for _, c := range []struct {
		name string
		url  string
		o    postgres.Options
		want postgres.PoolSettings
	}{
		{"Defaults", base, postgres.Options{}, postgres.PoolSettings{
			MaxConns: 20, MaxConnLifetime: time.Hour, MaxConnIdleTime: 30 * time.Minute,
			ConnectTimeout: 5 * time.Second, PingTimeout: 5 * time.Second,
			RuntimeParams: map[string]string{"statement_timeout": "5000", "idle_in_transaction_session_timeout": "30000", "application_name": "thauth"},
		}},
		{"FromURL", base + "&pool_max_conns=7&pool_min_conns=2&pool_max_conn_lifetime=5m&pool_max_conn_idle_time=1m&connect_timeout=2" +
			"&statement_timeout=250&idle_in_transaction_session_timeout=0&application_name=node1", postgres.Options{}, postgres.PoolSettings{
			MaxConns: 7, MinConns: 2, MaxConnLifetime: 5 * time.Minute, MaxConnIdleTime: time.Minute,
			ConnectTimeout: 2 * time.Second, PingTimeout: 2 * time.Second,
			RuntimeParams: map[string]string{"statement_timeout": "250", "idle_in_transaction_session_timeout": "0", "application_name": "node1"},
		}},
		{"OptionsWin", base + "&pool_max_conns=7&connect_timeout=2&statement_timeout=250", postgres.Options{
			MaxConns: 3, MinConns: 1, MaxConnLifetime: time.Minute, MaxConnIdleTime: time.Second,
			ConnectTimeout: 700 * time.Millisecond, StatementTimeout: 1500 * time.Millisecond, IdleInTransactionTimeout: -1,
		}, postgres.PoolSettings{
			MaxConns: 3, MinConns: 1, MaxConnLifetime: time.Minute, MaxConnIdleTime: time.Second,
			ConnectTimeout: 700 * time.Millisecond, PingTimeout: 700 * time.Millisecond,
			RuntimeParams: map[string]string{"statement_timeout": "1500", "idle_in_transaction_session_timeout": "0", "application_name": "thauth"},
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := postgres.Settings(c.url, c.o)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(c.want, got); d != "" {
				t.Errorf("settings (-want +got):\n%s", d)
			}
		})
	}
}

func TestSettingsInvalid(t *testing.T) {
	_, err := postgres.Settings("postgres://thauth:hunter2@db.example:notaport/thauth", postgres.Options{})
	wantCode(t, err, thauth.EInvalid)
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error %q shows the password", err)
	}
	_, err = postgres.Settings("postgres://thauth@db.example/thauth", postgres.Options{MaxConns: 2, MinConns: 3})
	wantCode(t, err, thauth.EInvalid)
}

// TestRuntimeParams checks the timeouts on real connections, and that a statement running
// past the statement timeout is EUnavailable.
func TestRuntimeParams(t *testing.T) {
	ctx := context.Background()
	url := pgtest.New(t)
	show := func(s *postgres.Store, param string) string {
		t.Helper()
		v, err := postgres.QueryString(ctx, s, "SHOW "+param)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	s := pgtest.Open(t, url, postgres.Options{})
	for param, want := range map[string]string{
		"statement_timeout": "5s", "idle_in_transaction_session_timeout": "30s", "application_name": "thauth",
	} {
		if got := show(s, param); got != want {
			t.Errorf("default %s = %q, want %q", param, got, want)
		}
	}
	s = pgtest.Open(t, url, postgres.Options{StatementTimeout: 100 * time.Millisecond})
	if got := show(s, "statement_timeout"); got != "100ms" {
		t.Errorf("statement_timeout = %q, want 100ms", got)
	}
	err := postgres.Exec(ctx, s, "SELECT pg_sleep(10)")
	wantCode(t, err, thauth.EUnavailable)
	if !strings.Contains(thauth.ErrorMessage(err), "timed out") {
		t.Errorf("message %q does not say the statement timed out", thauth.ErrorMessage(err))
	}
	s = pgtest.Open(t, url, postgres.Options{StatementTimeout: -1})
	if got := show(s, "statement_timeout"); got != "0" {
		t.Errorf("disabled statement_timeout = %q, want 0", got)
	}
}
