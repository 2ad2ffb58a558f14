#!/usr/bin/env bash
# Runs every test of the repository: formatting and vet, then the whole suite under the race
# detector (fuzz seed corpora included), against the embedded SQLite and a throwaway
# PostgreSQL 15 that this script starts on a free loopback port and removes at exit.
# Nothing is skipped silently: if PostgreSQL cannot be started, this fails with its message.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== gofmt"
unformatted=$(gofmt -l . | grep -v '^\.' || true)
if [ -n "$unformatted" ]; then
	echo "gofmt needed on:"; echo "$unformatted"; exit 1
fi
echo "== go vet"
go vet ./...

echo "== PostgreSQL"
if ! pgenv=$(scripts/pg.sh start); then
	echo "make test needs PostgreSQL 15 (/usr/lib/postgresql/15/bin): it could not be started" >&2
	exit 1
fi
eval "$pgenv"
trap 'scripts/pg.sh stop "$THAUTH_TEST_PG_DIR"' EXIT
export THAUTH_REQUIRE_POSTGRES=1
echo "started on ${THAUTH_TEST_DATABASE_URL%%/thauth_test*}"

echo "== Redis"
# The shared rate limits are tested against a real redis-server (installed here when missing).
if ! scripts/redis.sh ensure >/dev/null; then
	echo "make test needs redis-server: it could not be installed" >&2
	exit 1
fi
export THAUTH_REQUIRE_REDIS=1

echo "== go test -race"
go test -race -count=1 -timeout 30m ./...
