#!/usr/bin/env bash
# Service invocation through the runtime against nginx proxying to the same app.
# The runtime and nginx (one worker, keep-alive to the app) are pinned to core 0; the app and wrk to core 1.
# Rounds alternate between the two proxies. Each round gives the rate, wrk's p99 and the proxy process's own CPU time
# per request (user + system from /proc), which other work on a shared machine disturbs much less than a rate.
# A third column is nginx sending the app the headers the runtime must add to every invocation (dapr-caller-app-id,
# dapr-callee-app-id, traceparent, X-Forwarded-For/-Host/-Proto, the app's own Host): the app then parses the same
# request from both, which shows how much of a gap is the proxy and how much is the contract's headers costing the app.
# With --app-protocol h2c the runtime reaches the app over HTTP/2 without TLS (the tenant's appProtocol: h2c); nginx
# cannot speak HTTP/2 to an upstream (proxy_http_version stops at 1.1), so it reaches the same app process over HTTP/1.1.
# Needs wrk and nginx (Debian's packages). RUNTIME_DLL=... measures another build; RUNTIME_ENV="NAME=value ..." sets
# environment variables for the runtime process only (not the app), to compare runtime settings. RUNTIME_BIN=path
# measures a native executable (the shipped build: scripts/native-smoke.sh or `dotnet publish src/SharedRuntime.Host
# -c Release -r linux-x64 -o artifacts/native` makes one) instead of a JIT-compiled dll.
# With --unpinned nothing is pinned: every process may run on every core, and the runtime drives its sockets with one
# event loop per core (nginx keeps its one worker).
# Usage: bench/load/invoke-nginx.sh [rounds] [seconds per round] [--app-protocol http|h2c] [--unpinned] [--out FILE]
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-5}
seconds=${2:-4}
shift $(( $# < 2 ? $# : 2 ))
protocol=http; out=""; pin0=(taskset -c 0); pin1=(taskset -c 1); placement="runtime and nginx on core 0, app and wrk on core 1"
while [ $# -gt 0 ]; do
  case $1 in
    --app-protocol) protocol=$2; shift 2 ;;
    --unpinned) pin0=(); pin1=(); placement="nothing pinned"; shift ;;
    --out) out=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$nginx_bin" ] || { echo "nginx is needed: apt-get install nginx-light" >&2; exit 1; }
if [ -z "${RUNTIME_DLL:-}" ] && [ -z "${RUNTIME_BIN:-}" ]; then
  dotnet build src/SharedRuntime.Host -c Release -nologo -v quiet >/dev/null
fi
runtime_dll=${RUNTIME_DLL:-$(pwd)/src/SharedRuntime.Host/bin/Release/net10.0/shared-runtime.dll}
if [ -n "${RUNTIME_BIN:-}" ]; then runtime_cmd=("$RUNTIME_BIN"); build_label="native executable"; else runtime_cmd=(dotnet "$runtime_dll"); build_label="JIT build"; fi
dotnet build bench/SharedRuntime.LoadTest -c Release -nologo -v quiet >/dev/null
work=$(mktemp -d)
runtime=""; app=""
trap 'kill $runtime $app 2>/dev/null || true; [ -f "$work/nginx.pid" ] && kill $(cat "$work/nginx.pid") 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
app_port=3714
[ "$protocol" = h2c ] && app_port=3716
cat > "$work/resources.yaml" <<YAML
apiVersion: sharedruntime.io/v1alpha1
kind: Tenant
metadata:
  name: caller
spec:
  apiToken: {value: caller-token}
  limits: {requestsPerSecond: 10000000, burst: 10000000, maxConcurrency: 256, maxQueue: 256}
---
apiVersion: sharedruntime.io/v1alpha1
kind: Tenant
metadata:
  name: target
spec:
  apiToken: {value: target-token}
  appEndpoint: http://127.0.0.1:$app_port
  appProtocol: $protocol
  appChannel: {maxConcurrency: 256, maxQueue: 256}
YAML
cat > "$work/nginx.conf" <<NGINX
worker_processes 1;
pid $work/nginx.pid;
error_log $work/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  upstream app { server 127.0.0.1:3714; keepalive 64; }
  server {
    listen 127.0.0.1:3715;
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
  server {
    listen 127.0.0.1:3717;
    location / {
      proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header Host 127.0.0.1:3714;
      proxy_set_header dapr-caller-app-id caller;
      proxy_set_header dapr-callee-app-id target;
      proxy_set_header traceparent 00-\$request_id-92273ee22acffbe0-01;
      proxy_set_header X-Forwarded-For \$remote_addr;
      proxy_set_header X-Forwarded-Host \$http_host;
      proxy_set_header X-Forwarded-Proto \$scheme;
    }
  }
}
NGINX
export DOTNET_gcServer=0 DOTNET_gcConcurrent=0 DOTNET_TieredPGO=1
"${pin1[@]}" dotnet bench/SharedRuntime.LoadTest/bin/Release/net10.0/SharedRuntime.LoadTest.dll --serve-bare 3714 --h2c-port 3716 & app=$!
env ${RUNTIME_ENV:-} "${pin0[@]}" "${runtime_cmd[@]}" --resources-path "$work" \
  --dapr-http-port 3711 --dapr-grpc-port 3712 --metrics-port 3713 --log-level error --state-dir "$work/state" & runtime=$!
"${pin0[@]}" "$nginx_bin" -c "$work/nginx.conf" -p "$work" -g 'daemon on;'
until curl -sf -o /dev/null localhost:3711/v1.0/healthz && curl -sf -o /dev/null localhost:3714/v1.0/healthz && [ -s "$work/nginx.pid" ]; do sleep 0.1; done
nginx_worker=$(pgrep -P "$(cat "$work/nginx.pid")" | head -1)
via_runtime="http://127.0.0.1:3711/v1.0/invoke/target/method/v1.0/state/store/k"
via_nginx="http://127.0.0.1:3715/v1.0/state/store/k"
via_nginx_headers="http://127.0.0.1:3717/v1.0/state/store/k"
[ "$(curl -sf "$via_runtime" -H 'dapr-api-token: caller-token')" = "$(curl -sf "$via_nginx")" ] || { echo "the two answers differ" >&2; exit 1; }

ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# One wrk round against PID's proxy: prints "req/s p99-ms cpu-us-per-request".
rate() {
  local pid=$1; shift
  local before after
  before=$(cpu "$pid")
  "${pin1[@]}" wrk -t1 -c32 -d"${seconds}s" --latency "$@" > "$work/wrk.txt"
  after=$(cpu "$pid")
  grep -q 'Non-2xx\|Socket errors' "$work/wrk.txt" && { echo "ERRORS: $(grep 'Non-2xx\|Socket errors' "$work/wrk.txt")" >&2; }
  awk -v b="$before" -v a="$after" -v t="$ticks" '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    /requests in/ {n=$1} /Requests\/sec/ {r=$2} $1 == "99%" {p=ms($2)}
    END {printf "%s %.2f %.2f\n", r, p, (a-b)/t*1e6/n}' "$work/wrk.txt"
}
runtime_get() { rate "$runtime" -H 'dapr-api-token: caller-token' "$via_runtime"; }
nginx_get() { rate "$nginx_worker" "$via_nginx"; }
nginx_headers_get() { rate "$nginx_worker" "$via_nginx_headers"; }
for _ in 1 2 3; do runtime_get >/dev/null; done   # warm-up: JIT and tiered compilation
nginx_get >/dev/null
nginx_headers_get >/dev/null
{
  echo "$(date -u +%Y-%m-%d), $(nproc) cores, load average before: $(cut -d' ' -f1-3 /proc/loadavg); app protocol $protocol; $placement; runtime: $build_label;${RUNTIME_ENV:+ runtime environment: $RUNTIME_ENV;} wrk -t1 -c32, ${seconds}s per round"
  echo
  echo "| round | runtime req/s | nginx req/s | ratio | nginx + headers req/s | ratio | runtime p99 ms | nginx p99 ms | nginx + headers p99 ms | runtime CPU µs/req | nginx CPU µs/req | nginx + headers CPU µs/req | CPU ratio (nginx/runtime) |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  for r in $(seq "$rounds"); do
    read -r a ap ac < <(runtime_get)
    read -r b bp bc < <(nginx_get)
    read -r h hp hc < <(nginx_headers_get)
    python3 -c "print(f'| $r | {$a:,.0f} | {$b:,.0f} | {$a/$b:.2f}x | {$h:,.0f} | {$a/$h:.2f}x | {$ap:.2f} | {$bp:.2f} | {$hp:.2f} | {$ac:.1f} | {$bc:.1f} | {$hc:.1f} | {$bc/$ac:.2f}x |')"
    echo "$a $b $ap $bp $ac $bc $h $hp $hc" >> "$work/rounds.txt"
  done
  echo
  python3 - "$work/rounds.txt" <<'PY2'
import statistics, sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1])]
a, b, ap, bp, ac, bc, h, hp, hc = zip(*rows)
m = lambda xs: statistics.median(xs)
print(f"median throughput ratio: {m([x / y for x, y in zip(a, b)]):.2f}x "
      f"(runtime ahead in {sum(x >= y for x, y in zip(a, b))} of {len(rows)} rounds); "
      f"median p99 runtime / nginx: {m([x / y for x, y in zip(ap, bp)]):.2f}x; "
      f"median CPU-per-request ratio (nginx/runtime): {m([y / x for x, y in zip(ac, bc)]):.2f}x")
print(f"against nginx sending the same headers: median throughput ratio {m([x / y for x, y in zip(a, h)]):.2f}x "
      f"(runtime ahead in {sum(x >= y for x, y in zip(a, h))} of {len(rows)} rounds); "
      f"median p99 runtime / it: {m([x / y for x, y in zip(ap, hp)]):.2f}x; "
      f"median CPU-per-request ratio (it/runtime): {m([y / x for x, y in zip(ac, hc)]):.2f}x")
PY2
  echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee ${out:+"$out"}
