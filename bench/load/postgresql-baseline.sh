#!/usr/bin/env bash
# PostgreSQL's own cost of a save against a get, without the runtime: pgbench on 16 connections runs a bare single-row
# SELECT and a bare single-row UPDATE (prepared, each committed on its own) against the same table, server settings and
# cores as state-write-cost-postgresql.sh (PostgreSQL and pgbench pinned to core 1, fsync=off, synchronous_commit=off).
# The ratio it prints is the ceiling of what a save can reach against a get through any client on this machine.
# Usage: bench/load/postgresql-baseline.sh [rounds] [seconds per phase]
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-4}
seconds=${2:-3}
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
[[ -x "$bin/pgbench" ]] || { echo "PostgreSQL (with pgbench) is needed: scripts/install-test-servers.sh" >&2; exit 1; }
dir=$(mktemp -d); port=55440
as_pg() { if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[[ $(id -u) == 0 ]] && chown postgres "$dir"
as_pg "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-sync >/dev/null
as_pg taskset -c 1 "$bin/postgres" -D "$dir/data" -p $port -k "$dir" -c listen_addresses=127.0.0.1 -c fsync=off \
  -c synchronous_commit=off -c full_page_writes=off >"$dir/log" 2>&1 & pg=$!
trap 'kill $(head -1 "$dir/data/postmaster.pid" 2>/dev/null) $pg 2>/dev/null || true; sleep 1; rm -rf "$dir"' EXIT
until "$bin/psql" -h 127.0.0.1 -p $port -U postgres -c 'select 1' >/dev/null 2>&1; do sleep 0.2; done
"$bin/psql" -q -h 127.0.0.1 -p $port -U postgres <<SQL
CREATE TABLE state (key text NOT NULL PRIMARY KEY, value bytea NOT NULL, etag bigint NOT NULL, expiresat timestamptz NULL, contenttype text NULL);
INSERT INTO state (key, value, etag) SELECT 'app||k' || i, convert_to('{"order":42,"items":["a","b","c"]}', 'UTF8'), 1 FROM generate_series(0, 1023) i;
VACUUM ANALYZE state;
SQL
cat > "$dir/get.sql" <<'SQL'
\set i random(0, 1023)
SELECT value, etag, expiresat, contenttype FROM state WHERE key = 'app||k' || :i AND (expiresat IS NULL OR expiresat > now());
SQL
cat > "$dir/save.sql" <<'SQL'
\set i random(0, 1023)
UPDATE state SET value = convert_to('{"order":42,"items":["a","b","c"]}', 'UTF8'), etag = etag + 1 WHERE key = 'app||k' || :i RETURNING etag;
SQL
chmod a+r "$dir"/*.sql
phase() { taskset -c 1 "$bin/pgbench" -h 127.0.0.1 -p $port -U postgres -n -M prepared -c 16 -j 1 -T "$seconds" -f "$dir/$1.sql" postgres 2>/dev/null \
  | awk '/^tps/ {print int($3)}'; }
phase get >/dev/null; phase save >/dev/null   # warm-up
echo "$(date -u +%Y-%m-%d), $(nproc) cores, load average before: $(cut -d' ' -f1-3 /proc/loadavg); pgbench, 16 connections, PostgreSQL on core 1, ${seconds}s per phase"
echo
echo "| round | SELECT tx/s | UPDATE tx/s | UPDATE / SELECT |"
echo "|---|---|---|---|"
for r in $(seq "$rounds"); do
  g=$(phase get); s=$(phase save)
  echo "$g $s" >> "$dir/rounds.txt"
  python3 -c "print(f'| $r | {$g:,} | {$s:,} | {$s/$g:.2f}x |')"
done
python3 - "$dir/rounds.txt" <<'PY'
import statistics, sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1])]
print(f"\nmedian UPDATE / SELECT: {statistics.median(s / g for g, s in rows):.2f}x")
PY
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
