#!/usr/bin/env bash
# Runs the benchmarks behind the performance targets and prints their figures. Takes a few
# minutes on a 2-core machine (the bulk-store benchmarks write ~1M rows first). Figures are
# only meaningful on an otherwise idle machine. BENCH_QUICK=1 skips the bulk benchmarks.
set -euo pipefail
cd "$(dirname "$0")/.."

run() { echo; echo "== $*"; "$@" 2>&1 | grep -Ev '^(goos|goarch|pkg|cpu|PASS|ok )' || true; }

run go test -run '^$' -bench . -benchtime 200000x .
run go test -run '^$' -bench 'BenchmarkCheck$|BenchmarkCheckLatency|BenchmarkBatch100|BenchmarkSubjectUpdate|BenchmarkAuthenticate' -benchtime 200000x ./internal/engine/
run go test -run '^$' -bench 'BenchmarkMemoryPerGrant' -benchtime 1x ./internal/engine/
run go test -run '^$' -bench 'BenchmarkCheckHandler$|BenchmarkDecodeCheck' -benchtime 200000x ./internal/httpserver/
if [ "${BENCH_QUICK:-0}" != 1 ]; then
	run go test -run '^$' -bench 'BenchmarkRestartToReady' -benchtime 1x -timeout 30m ./internal/engine/
	run go test -run '^$' -bench 'BenchmarkApply100kSubjects' -benchtime 1x -timeout 30m ./internal/manage/
	run go test -run '^$' -bench 'BenchmarkSubjectUpsertTx' -benchtime 2000x ./internal/sqlite/
fi
if [ "${BENCH_QUICK:-0}" != 1 ]; then
	echo; echo "== several nodes on PostgreSQL (test/cluster)"
	pgenv=$(scripts/pg.sh start)
	eval "$pgenv"
	trap 'scripts/pg.sh stop "$THAUTH_TEST_PG_DIR"' EXIT
	THAUTH_REQUIRE_POSTGRES=1 go test -run '^$' -bench . -benchtime 1x -timeout 20m ./test/cluster/ 2>&1 \
		| grep -Ev '^(goos|goarch|pkg|cpu|PASS|ok )' || true
fi
echo; echo "== HTTP: /v1/check against a minimal net/http baseline (thauth-loadgen -self -baseline)"
go run ./cmd/thauth-loadgen -self -baseline -c 64 -d 10s
