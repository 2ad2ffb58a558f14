package postgres

import (
	"context"
	"time"
)

// Exec runs sql on a pool connection of s, for tests; errors are mapped as the store's are.
func Exec(ctx context.Context, s *Store, sql string, args ...any) error {
	_, err := s.pool.Exec(ctx, sql, args...)
	return mapErr(err, "test statement failed")
}

// QueryString runs a one-value query on a pool connection of s, for tests.
func QueryString(ctx context.Context, s *Store, sql string, args ...any) (string, error) {
	var v string
	err := s.pool.QueryRow(ctx, sql, args...).Scan(&v)
	return v, mapErr(err, "test query failed")
}

// PoolSettings is what poolConfig made of a connection string and Options.
type PoolSettings struct {
	MaxConns, MinConns               int32
	MaxConnLifetime, MaxConnIdleTime time.Duration
	ConnectTimeout, PingTimeout      time.Duration
	RuntimeParams                    map[string]string
}

// Settings returns the pool settings Open would use, for tests.
func Settings(databaseURL string, o Options) (PoolSettings, error) {
	cfg, err := poolConfig(databaseURL, o)
	if err != nil {
		return PoolSettings{}, err
	}
	return PoolSettings{
		MaxConns: cfg.MaxConns, MinConns: cfg.MinConns,
		MaxConnLifetime: cfg.MaxConnLifetime, MaxConnIdleTime: cfg.MaxConnIdleTime,
		ConnectTimeout: cfg.ConnConfig.ConnectTimeout, PingTimeout: cfg.PingTimeout,
		RuntimeParams: cfg.ConnConfig.RuntimeParams,
	}, nil
}

var ParseNotification = parseNotification

// SetScanPage sets ScanSubjectGrants' page size until the returned function restores it.
func SetScanPage(n int) (restore func()) {
	old := scanPage
	scanPage = n
	return func() { scanPage = old }
}

// SetListenIdleCheck sets the idle check interval of s's Listen calls started afterwards.
func SetListenIdleCheck(s *Store, d time.Duration) { s.listenIdle = d }
