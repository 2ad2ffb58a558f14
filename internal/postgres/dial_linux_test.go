package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/thauth/thauth/internal/postgres"
	"github.com/thauth/thauth/internal/postgres/pgtest"
)

func TestTCPUserTimeout(t *testing.T) {
	url := pgtest.New(t)
	for _, c := range []struct {
		connect time.Duration
		want    int
	}{{0, 10000}, {300 * time.Millisecond, 10000}, {8 * time.Second, 16000}} {
		s := pgtest.Open(t, url, postgres.Options{ConnectTimeout: c.connect})
		got, err := postgres.SocketUserTimeout(context.Background(), s)
		if err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("ConnectTimeout %v: TCP_USER_TIMEOUT = %dms, want %dms", c.connect, got, c.want)
		}
	}
}
