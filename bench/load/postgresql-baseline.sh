#!/usr/bin/env bash
# PostgreSQL's own cost of a save against a get, without the runtime: pgbench on 16 connections runs, against the
# store's table (1,024 keys of one app) with the server settings and cores of state-write-cost-postgresql.sh
# (PostgreSQL and pgbench pinned to core 1, fsync=off, synchronous_commit=off), each prepared and committed on its own:
#   get   - the store's GET statement;
#   save  - a bare single-row UPDATE of value and etag;
#   write - the store's write statement (etag check, quota check, usage), for an overwrite without etag by a value of
#           the same size (the app's usage does not change);
#   resize - the same by a value of another size: the app's usage changes with each write;
#   overwrite, overwrite resized - the same two writes by the store's overwrite statement, which a save of a key that
#           exists runs first (and, when it writes, alone).
# The statements are taken from PostgreSqlStateSql.cs by postgresql-statements.py. Bare UPDATE / get is PostgreSQL's
# own ratio on this machine; write / get is what the store's own statements cost there.
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
python3 bench/load/postgresql-statements.py src/SharedRuntime.Components.Backends/State/PostgreSqlStateSql.cs "$dir"
"$bin/psql" -q -h 127.0.0.1 -p $port -U postgres -f "$dir/create.sql"
"$bin/psql" -q -h 127.0.0.1 -p $port -U postgres <<'SQL'
INSERT INTO state (key, value, etag) SELECT 'app||k' || i, convert_to('{"order":42,"items":["a","b","c"]}', 'UTF8'), 1 FROM generate_series(0, 1023) i;
INSERT INTO state_usage (prefix, keys, bytes) SELECT 'app', count(*), sum(octet_length(key) + octet_length(value)) FROM state;
VACUUM ANALYZE state;
SQL
cat > "$dir/save.sql" <<'SQL'
\set i random(0, 1023)
UPDATE state SET value = convert_to('{"order":42,"items":["a","b","c"]}', 'UTF8'), etag = etag + 1 WHERE key = 'app||k' || :i RETURNING etag;
SQL
chmod a+r "$dir"/*.sql
phase() { taskset -c 1 env ${PGBENCH_OPTIONS:+PGOPTIONS="$PGBENCH_OPTIONS"} "$bin/pgbench" -h 127.0.0.1 -p $port -U postgres -n -M prepared -c 16 -j 1 -T "$seconds" -f "$dir/$1.sql" postgres 2>/dev/null \
  | awk '/^tps/ {print int($3)}'; }
phase get >/dev/null; phase save >/dev/null; phase write >/dev/null; phase resize >/dev/null   # warm-up
phase overwrite >/dev/null; phase overwrite-resize >/dev/null
echo "$(date -u +%Y-%m-%d), $(nproc) cores, load average before: $(cut -d' ' -f1-3 /proc/loadavg); pgbench, 16 connections, PostgreSQL on core 1, ${seconds}s per phase"
echo
echo "| round | get tx/s | bare UPDATE tx/s | store write tx/s | store write, resized, tx/s | overwrite tx/s | overwrite, resized, tx/s | bare UPDATE / get | store write / get | resized / get | overwrite / get | overwrite resized / get |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
for r in $(seq "$rounds"); do
  g=$(phase get); s=$(phase save); w=$(phase write); z=$(phase resize); o=$(phase overwrite); y=$(phase overwrite-resize)
  echo "$g $s $w $z $o $y" >> "$dir/rounds.txt"
  python3 -c "print(f'| $r | {$g:,} | {$s:,} | {$w:,} | {$z:,} | {$o:,} | {$y:,} | {$s/$g:.2f}x | {$w/$g:.2f}x | {$z/$g:.2f}x | {$o/$g:.2f}x | {$y/$g:.2f}x |')"
done
python3 - "$dir/rounds.txt" <<'PY'
import statistics, sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1])]
m = lambda i: statistics.median(r[i] / r[0] for r in rows)
print(f"\nmedians: bare UPDATE / get {m(1):.2f}x; store write / get {m(2):.2f}x; resized / get {m(3):.2f}x; overwrite / get {m(4):.2f}x; overwrite resized / get {m(5):.2f}x")
PY
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
