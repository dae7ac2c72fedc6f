#!/usr/bin/env bash
# As state-write-cost.sh, on PostgreSQL: save against get, and save with 1,000,000 rows of other apps in the same
# table schema (table state_crowded) against an empty table. Starts its own PostgreSQL (initdb in a temporary folder,
# no fsync), pinned to core 1 with the load generator; the runtime is pinned to core 0.
# Usage: bench/load/state-write-cost-postgresql.sh [--other-rows N] [--npgsql "Key=Value;..."] [load options, e.g. --rounds 4 --out FILE]
# --npgsql adds Npgsql settings to the stores' connection string, e.g. "Max Auto Prepare=0" to compare without prepared
# statements.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
[[ -x "$bin/postgres" ]] || { echo "PostgreSQL is needed: scripts/install-test-servers.sh" >&2; exit 1; }
others=1000000
extra=""
while [[ "${1:-}" == "--other-rows" || "${1:-}" == "--npgsql" ]]; do
  if [[ $1 == "--other-rows" ]]; then others=$2; else extra=";$2"; fi
  shift 2
done
dotnet build src/SharedRuntime.Host -c Release -nologo -v quiet
dotnet build bench/SharedRuntime.LoadTest -c Release -nologo -v quiet
dir=$(mktemp -d); port=55439
as_pg() { if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[[ $(id -u) == 0 ]] && chown postgres "$dir"
if "$bin/psql" -h 127.0.0.1 -p $port -U postgres -c 'select 1' >/dev/null 2>&1; then
  echo "port $port already serves a PostgreSQL (another run of this script?)" >&2; exit 1
fi
as_pg "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-sync >/dev/null
as_pg taskset -c 1 "$bin/postgres" -D "$dir/data" -p $port -k "$dir" -c listen_addresses=127.0.0.1 -c fsync=off \
  -c synchronous_commit=off -c full_page_writes=off >"$dir/log" 2>&1 & pg=$!
# runuser does not pass the signal on: stop the postmaster by its pid file.
trap 'kill $(head -1 "$dir/data/postmaster.pid" 2>/dev/null) $pg 2>/dev/null || true; sleep 1; rm -rf "$dir"' EXIT
until "$bin/psql" -h 127.0.0.1 -p $port -U postgres -c 'select 1' >/dev/null 2>&1; do sleep 0.2; done
# Other apps' rows, written before the runtime starts: the runtime has no usage kept for them.
"$bin/psql" -q -h 127.0.0.1 -p $port -U postgres <<SQL
CREATE TABLE state_crowded (
  key text NOT NULL PRIMARY KEY, value bytea NOT NULL, etag bigint NOT NULL, expiresat timestamptz NULL, contenttype text NULL,
  prefix text GENERATED ALWAYS AS (CASE WHEN strpos(key, '||') > 0 THEN left(key, strpos(key, '||') - 1) ELSE '' END) STORED);
INSERT INTO state_crowded (key, value, etag)
  SELECT 'other' || (i % 50) || '||key' || i, convert_to('{"order":' || i || ',"items":["a","b","c"]}', 'UTF8'), 1 FROM generate_series(1, $others) i;
-- The store's own index on the prefix, built here so that the runtime's start does not build it over other apps' rows.
CREATE INDEX state_crowded_prefix ON state_crowded (prefix);
VACUUM ANALYZE state_crowded;
SQL
echo "state_crowded holds $("$bin/psql" -tA -h 127.0.0.1 -p $port -U postgres -c 'select count(*) from state_crowded') rows" >&2
dll=$(pwd)/src/SharedRuntime.Host/bin/Release/net10.0/shared-runtime.dll
taskset -c 1 dotnet bench/SharedRuntime.LoadTest/bin/Release/net10.0/SharedRuntime.LoadTest.dll --runtime-dll "$dll" --runtime-cpu 0 \
  --scenario state-write-cost --postgresql "Host=127.0.0.1;Port=$port;Username=postgres;Database=postgres$extra" \
  --crowded-note "$others rows of 50 other apps" "$@"
