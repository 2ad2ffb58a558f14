#!/usr/bin/env bash
# redis-server for the tests that need a real Redis (internal/ratelimit).
#
#   scripts/redis.sh ensure   # installs Debian's redis-server when it is missing, prints its path
#
# The tests start and stop their own throwaway redis-server on a free loopback port (no
# persistence, in a temp dir), so this script only makes sure the binary is there. With
# THAUTH_REQUIRE_REDIS=1 set, those tests fail instead of skipping when it is not.
# Installing needs root (as on CI and the project's machines) and Debian's package mirror.
set -euo pipefail

die() { echo "scripts/redis.sh: $*" >&2; exit 1; }

find_redis() {
	command -v redis-server 2>/dev/null && return 0
	[ -x /usr/bin/redis-server ] && echo /usr/bin/redis-server && return 0
	return 1
}

case "${1:-}" in
ensure)
	if find_redis; then exit 0; fi
	command -v apt-get >/dev/null 2>&1 \
		|| die "redis-server is not installed and apt-get is not available: install redis-server (7.x) yourself"
	[ "$(id -u)" = 0 ] \
		|| die "redis-server is not installed; run this as root, or: sudo apt-get install -y --no-install-recommends redis-server"
	log=$(mktemp /tmp/thauth-redis-install.XXXXXX)
	trap 'rm -f "$log"' EXIT
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >"$log" 2>&1 \
		|| die "apt-get update failed: $(tail -5 "$log")"
	apt-get install -y -qq --no-install-recommends redis-server >"$log" 2>&1 \
		|| die "apt-get install redis-server failed: $(tail -5 "$log")"
	find_redis || die "redis-server was installed but is not on PATH nor at /usr/bin/redis-server"
	;;
*)
	die "usage: scripts/redis.sh ensure"
	;;
esac
