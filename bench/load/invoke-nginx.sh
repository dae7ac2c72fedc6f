#!/usr/bin/env bash
# Service invocation through the runtime against nginx proxying to the same app.
# The runtime and nginx (one worker, keep-alive to the app) are pinned to core 0; the app and wrk to core 1.
# Rounds alternate between the two proxies. Needs wrk and nginx (Debian's packages).
# Usage: bench/load/invoke-nginx.sh [rounds] [seconds per round]
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-5}
seconds=${2:-4}
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$nginx_bin" ] || { echo "nginx is needed: apt-get install nginx" >&2; exit 1; }
dotnet build src/SharedRuntime.Host -c Release -nologo -v quiet >/dev/null
dotnet build bench/SharedRuntime.LoadTest -c Release -nologo -v quiet >/dev/null
work=$(mktemp -d)
runtime=""; app=""; proxy=""
trap 'kill $runtime $app 2>/dev/null || true; [ -n "$proxy" ] && kill $(cat "$work/nginx.pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT
cat > "$work/resources.yaml" <<'YAML'
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
  appEndpoint: http://127.0.0.1:3714
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
}
NGINX
taskset -c 1 dotnet bench/SharedRuntime.LoadTest/bin/Release/net10.0/SharedRuntime.LoadTest.dll --serve-bare 3714 & app=$!
taskset -c 0 dotnet src/SharedRuntime.Host/bin/Release/net10.0/shared-runtime.dll --resources-path "$work" \
  --dapr-http-port 3711 --dapr-grpc-port 3712 --metrics-port 3713 --log-level error --state-dir "$work/state" & runtime=$!
taskset -c 0 "$nginx_bin" -c "$work/nginx.conf" -p "$work" -g 'daemon on;'; proxy=1
until curl -sf -o /dev/null localhost:3711/v1.0/healthz && curl -sf -o /dev/null localhost:3714/v1.0/healthz; do sleep 0.1; done
via_runtime="http://127.0.0.1:3711/v1.0/invoke/target/method/v1.0/state/store/k"
via_nginx="http://127.0.0.1:3715/v1.0/state/store/k"
[ "$(curl -s "$via_runtime" -H 'dapr-api-token: caller-token')" = "$(curl -s "$via_nginx")" ]

rate() { taskset -c 1 wrk -t1 -c32 -d"${seconds}s" "$@" | awk '/Requests\/sec/ {print $2} /Non-2xx/ {print "ERRORS: " $0 > "/dev/stderr"}'; }
for _ in 1 2 3; do rate -H "dapr-api-token: caller-token" "$via_runtime" >/dev/null; done   # warm-up: JIT and tiered compilation
rate "$via_nginx" >/dev/null
echo "| round | runtime req/s | nginx req/s | ratio |"
echo "|---|---|---|---|"
for r in $(seq "$rounds"); do
  a=$(rate -H 'dapr-api-token: caller-token' "$via_runtime")
  b=$(rate "$via_nginx")
  echo "| $r | $a | $b | $(python3 -c "print(f'{$a/$b:.2f}x')") |"
done
