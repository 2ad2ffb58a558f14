#!/usr/bin/env bash
# A throwaway PostgreSQL 15 for tests, on a random free loopback port.
#
#   eval "$(scripts/pg.sh start)"   # exports THAUTH_TEST_DATABASE_URL and THAUTH_TEST_PG_DIR
#   scripts/pg.sh stop "$THAUTH_TEST_PG_DIR"
#
# initdb and postgres refuse to run as root, so when run as root they run as the postgres user.
# Ordinary tests run with fsync off for speed; crash-safety tests start their own durable
# cluster through the same script with PG_DURABLE=1.
set -euo pipefail
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}

die() { echo "scripts/pg.sh: $*" >&2; exit 1; }

as_pg() {
	if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() {
	python3 - <<'PY' 2>/dev/null || echo $((20000 + RANDOM % 20000))
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()
PY
}

case "${1:-}" in
start)
	[ -x "$PGBIN/initdb" ] || die "PostgreSQL 15 not found in $PGBIN (install postgresql-15)"
	dir=$(mktemp -d /tmp/thauth-pg.XXXXXX)
	chmod 0755 "$dir"
	[ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
	as_pg "$PGBIN/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 \
		|| die "initdb failed: $(tail -5 "$dir/initdb.log")"
	opts="-c listen_addresses=127.0.0.1 -k $dir -c max_connections=300"
	if [ "${PG_DURABLE:-0}" != 1 ]; then
		opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
	fi
	for attempt in 1 2 3 4 5; do
		port=$(free_port)
		if as_pg "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/pg.log" -w -t 30 -o "-p $port $opts" start >/dev/null 2>&1; then
			echo "$port" >"$dir/port"
			break
		fi
		[ "$attempt" = 5 ] && die "could not start PostgreSQL: $(tail -5 "$dir/pg.log")"
	done
	"$PGBIN/createdb" -h 127.0.0.1 -p "$port" -U postgres thauth_test || die "createdb failed"
	echo "export THAUTH_TEST_DATABASE_URL='postgres://postgres@127.0.0.1:$port/thauth_test?sslmode=disable'"
	echo "export THAUTH_TEST_PG_DIR='$dir'"
	echo "export THAUTH_TEST_PGBIN='$PGBIN'"
	;;
stop)
	dir=${2:-}
	[ -n "$dir" ] && [ -d "$dir" ] || exit 0
	as_pg "$PGBIN/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
	rm -rf "$dir"
	;;
*)
	die "usage: scripts/pg.sh start | stop DIR"
	;;
esac
