package sqlite

import (
	"context"
	"database/sql"
)

// Pragmas reports the pragmas in effect on a write and a read connection of s, for tests.
func Pragmas(ctx context.Context, s *Store) (map[string]map[string]string, error) {
	out := map[string]map[string]string{}
	for name, p := range map[string]*sql.DB{"write": s.w, "read": s.r} {
		out[name] = map[string]string{}
		for _, pragma := range []string{"journal_mode", "foreign_keys", "synchronous", "busy_timeout", "query_only"} {
			var v string
			if err := p.QueryRowContext(ctx, "PRAGMA "+pragma).Scan(&v); err != nil {
				return nil, err
			}
			out[name][pragma] = v
		}
	}
	return out, nil
}
