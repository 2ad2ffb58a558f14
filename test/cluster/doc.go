// Package cluster tests Thauth as it is deployed: several `thauth serve` processes, built
// from this repository, sharing one real PostgreSQL database (or one SQLite data directory
// for the single-node crash test), driven over loopback HTTP with the Go SDK.
//
// The tests cover what issue 3 promises of a multi-node installation:
//   - convergence: random writes through random nodes end up as the same decisions on
//     every node as in an engine freshly loaded from the database; revoked keys stop
//     working everywhere; freshness tokens give read-your-writes across nodes;
//   - crash safety: a node killed with SIGKILL in the middle of a stream of writes loses
//     none that it acknowledged and never shows half of a configuration apply (SQLite
//     always; PostgreSQL on a durable cluster of its own);
//   - outage: while PostgreSQL is down, decisions go on without a single error, writes fail
//     fast with 503 and /readyz says degraded; when it is back, everything recovers without
//     restarting a node. A project locked by a stuck writer makes writes fail with 503
//     after the statement timeout, not hang.
//
// The benchmarks measure how fast a write becomes visible on another node, the sustained
// upsert throughput through one and three nodes, and the decision throughput of a node on
// PostgreSQL next to one on SQLite.
//
// Nodes run as subprocesses of the real binary rather than in-process: cmd/internal/serve is
// internal to cmd/, and a subprocess is also the only honest way to SIGKILL a node. The
// binary is built once per test run (with -race when the tests run with -race). Tests that
// need PostgreSQL follow internal/postgres/pgtest: they are skipped when
// THAUTH_TEST_DATABASE_URL is unset, unless THAUTH_REQUIRE_POSTGRES=1 (as `make test` sets),
// in which case they fail. Clusters of their own (durable, or to be stopped) are started with
// scripts/pg.sh and removed when the test ends.
package cluster
