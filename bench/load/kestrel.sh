#!/usr/bin/env bash
# State GET through the runtime's full admission path against a bare Kestrel endpoint returning the same bytes.
# Both servers pinned to core 0 with the same server settings (Kestrel limits, no Server header, HTTP/1.1 only) and the
# same GC settings (workstation, non-concurrent, tiered PGO); wrk (Debian's package) pinned to core 1, 32 keep-alive
# connections; rounds alternate between the two.
# Usage: bench/load/kestrel.sh [rounds] [seconds per round] [--out FILE]
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-5}
seconds=${2:-4}
out=""
[ "${3:-}" = "--out" ] && out=${4:?--out FILE}
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
# RUNTIME_DLL=path/to/shared-runtime.dll measures another build (say, of an earlier commit) against the same bare app.
runtime_dll=${RUNTIME_DLL:-src/SharedRuntime.Host/bin/Release/net10.0/shared-runtime.dll}
[ -n "${RUNTIME_DLL:-}" ] || dotnet build src/SharedRuntime.Host -c Release -nologo -v quiet >/dev/null
dotnet build bench/SharedRuntime.LoadTest -c Release -nologo -v quiet >/dev/null
work=$(mktemp -d)
runtime=""; bare=""
trap 'kill $runtime $bare 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
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
# The runtime runs socket completions inline and does not spin idle thread-pool workers (its own defaults): the bare
# server gets the same, so that the comparison is of the request path alone.
export DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1 DOTNET_ThreadPool_UnfairSemaphoreSpinLimit=0
taskset -c 0 dotnet "$runtime_dll" --resources-path "$work" \
  --dapr-http-port 3701 --dapr-grpc-port 3702 --metrics-port 3703 --log-level error & runtime=$!
taskset -c 0 dotnet bench/SharedRuntime.LoadTest/bin/Release/net10.0/SharedRuntime.LoadTest.dll --serve-bare 3704 & bare=$!
until curl -sf -o /dev/null localhost:3701/v1.0/healthz && curl -sf -o /dev/null localhost:3704/v1.0/healthz; do sleep 0.1; done
curl -sf -X POST localhost:3701/v1.0/state/store -H 'dapr-api-token: quiet-token' -H 'content-type: application/json' \
  -d '[{"key":"k","value":{"order":42,"items":["a","b","c"]}}]'
# Same status line, headers (but Date) and body from both.
answer() { curl -si "$@" | tr -d '\r' | grep -v '^Date:'; }
[ "$(answer localhost:3701/v1.0/state/store/k -H 'dapr-api-token: quiet-token')" = "$(answer localhost:3704/v1.0/state/store/k)" ] \
  || { echo "the two answers differ" >&2; answer localhost:3701/v1.0/state/store/k -H 'dapr-api-token: quiet-token' >&2; answer localhost:3704/v1.0/state/store/k >&2; exit 1; }

# One wrk round against PID's server: prints "req/s cpu-us-per-request", the second being the server process's own CPU
# time (user + system, from /proc) over the requests wrk completed: a figure that other work on the machine disturbs
# much less than a rate does.
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
runtime_get() { rate "$runtime" -H 'dapr-api-token: quiet-token' http://127.0.0.1:3701/v1.0/state/store/k; }
bare_get() { rate "$bare" http://127.0.0.1:3704/v1.0/state/store/k; }
source "$(dirname "$0")/side-by-side.sh"
side_by_side "wrk -t1 -c32" req/s req "bare Kestrel"
