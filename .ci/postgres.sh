#!/usr/bin/env bash
# Start a throwaway PostgreSQL server on 127.0.0.1 for the tests and print its URL, e.g.
#   export NAS_TEST_POSTGRES_URL=$(.ci/postgres.sh)
# `.ci/postgres.sh stop` stops it and removes its data.
# Installs Debian's package when no server is installed (needs root). The cluster lives in
# $NAS_PG_DATA (default /tmp/nas-pg, recreated) and listens on $NAS_PG_PORT (default: a free
# port); authentication is "trust" on loopback only. Fails (exit status 1) when it cannot start.
set -euo pipefail
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql) >&2
fi
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
data=${NAS_PG_DATA:-/tmp/nas-pg}
port=${NAS_PG_PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
as_postgres() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
if [ -f "$data/postmaster.pid" ]; then as_postgres "$bin/pg_ctl" -D "$data" -m immediate stop >&2 || true; fi
if [ "${1:-}" = stop ]; then rm -rf "$data"; exit 0; fi
rm -rf "$data"
mkdir -p "$data"
if [ "$(id -u)" = 0 ]; then chown postgres "$data"; fi
as_postgres "$bin/initdb" -D "$data" -A trust -U postgres >&2
as_postgres "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w \
    -o "-p $port -h 127.0.0.1 -k $data -c max_connections=200" start >&2
as_postgres "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres nas_test >&2
echo "postgresql://postgres@127.0.0.1:$port/nas_test"
