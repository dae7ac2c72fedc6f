#!/usr/bin/env bash
# The cost of the per-tenant CPU counter (sharedruntime_tenant_cpu_seconds_total) on the state GET path: the same
# build twice, with the counter (--tenant-cpu-metrics true) and without it (the default), side by side. Both pinned to
# core 0 with the same GC settings as kestrel.sh; wrk (Debian's package) pinned to core 1, 32 keep-alive connections;
# rounds alternate between the two. The "CPU ratio" column is the server's own CPU per request without the counter
# over with it: 0.97x means the counter costs 3% of a state GET's CPU.
# Usage: bench/load/tenant-cpu.sh [rounds] [seconds per round] [--out FILE]
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-5}
seconds=${2:-4}
out=""
[ "${3:-}" = "--out" ] && out=${4:?--out FILE}
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
runtime_dll=${RUNTIME_DLL:-src/SharedRuntime.Host/bin/Release/net10.0/shared-runtime.dll}
[ -n "${RUNTIME_DLL:-}" ] || dotnet build src/SharedRuntime.Host -c Release -nologo -v quiet >/dev/null
work=$(mktemp -d)
with=""; without=""
trap 'kill $with $without 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
cat > "$work/resources.yaml" <<'YAML'
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: store
spec:
  type: state.in-memory
---
apiVersion: sharedruntime.io/v1alpha1
kind: Tenant
metadata:
  name: quiet
spec:
  apiToken: {value: quiet-token}
  limits: {requestsPerSecond: 10000000, burst: 10000000, maxConcurrency: 256, maxQueue: 256}
YAML
export DOTNET_gcServer=0 DOTNET_gcConcurrent=0 DOTNET_TieredPGO=1
taskset -c 0 dotnet "$runtime_dll" --resources-path "$work" --state-dir "$work/with" --tenant-cpu-metrics true \
  --dapr-http-port 3711 --dapr-grpc-port 3712 --metrics-port 3713 --log-level error & with=$!
taskset -c 0 dotnet "$runtime_dll" --resources-path "$work" --state-dir "$work/without" --tenant-cpu-metrics false \
  --dapr-http-port 3721 --dapr-grpc-port 3722 --metrics-port 3723 --log-level error & without=$!
until curl -sf -o /dev/null localhost:3711/v1.0/healthz && curl -sf -o /dev/null localhost:3721/v1.0/healthz; do sleep 0.1; done
for port in 3711 3721; do
  curl -sf -X POST localhost:$port/v1.0/state/store -H 'dapr-api-token: quiet-token' -H 'content-type: application/json' \
    -d '[{"key":"k","value":{"order":42,"items":["a","b","c"]}}]'
done

ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rate() {
  local pid=$1; shift
  local before after
  before=$(cpu "$pid")
  taskset -c 1 wrk -t1 -c32 -d"${seconds}s" "$@" > "$work/wrk.txt"
  after=$(cpu "$pid")
  grep -q 'Non-2xx' "$work/wrk.txt" && { echo "ERRORS: $(grep Non-2xx "$work/wrk.txt")" >&2; }
  awk -v b="$before" -v a="$after" -v t="$ticks" '/requests in/ {n=$1} /Requests\/sec/ {r=$2} END {printf "%s %.2f\n", r, (a-b)/t*1e6/n}' "$work/wrk.txt"
}
runtime_get() { rate "$with" -H 'dapr-api-token: quiet-token' http://127.0.0.1:3711/v1.0/state/store/k; }
bare_get() { rate "$without" -H 'dapr-api-token: quiet-token' http://127.0.0.1:3721/v1.0/state/store/k; }
source "$(dirname "$0")/side-by-side.sh"
side_by_side "state GET, runtime with the CPU counter (\"runtime\") and without it (--tenant-cpu-metrics false), wrk -t1 -c32" req/s req "without the counter"
# The counter measured something: the tenant's CPU seconds as the runtime with the counter reports them.
echo
echo "runtime with the counter: $(curl -s localhost:3713/metrics | grep '^sharedruntime_tenant_cpu_seconds_total' | head -1)" | tee -a ${out:-/dev/null}
echo "runtime without it: $(curl -s localhost:3723/metrics | grep -c '^sharedruntime_tenant_cpu_seconds_total' || true) series" | tee -a ${out:-/dev/null}
