#!/usr/bin/env bash
# How soon a change in a configuration.redis store reaches a subscribed app: the app subscribes over HTTP
# (GET /v1.0/configuration/{store}/subscribe?key=...), then keys are changed in Redis one at a time with redis-cli; each change
# is timed from just before the SET to its POST /configuration/{store}/{key} at the app. Reports min/median/p90/max.
# Usage: bench/load/configuration-latency.sh [changes, default 30]; needs redis-server.
set -euo pipefail
cd "$(dirname "$0")/../.."
changes=${1:-30}
command -v redis-server >/dev/null || { echo "redis-server is needed: scripts/install-test-servers.sh" >&2; exit 1; }
dotnet build src/SharedRuntime.Host -c Release -nologo -v quiet >/dev/null
dll=$(pwd)/src/SharedRuntime.Host/bin/Release/net10.0/shared-runtime.dll
work=$(mktemp -d); port=6396
redis-server --port $port --bind 127.0.0.1 --save '' --appendonly no --daemonize no >/dev/null & redis_pid=$!
trap 'kill $redis_pid 2>/dev/null || true; rm -rf "$work"' EXIT
until redis-cli -p $port ping >/dev/null 2>&1; do sleep 0.1; done
python3 - "$dll" "$work" "$port" "$changes" <<'PY'
import http.server, json, os, socket, statistics, subprocess, sys, threading, time, urllib.error, urllib.request

dll, work, redis_port, changes = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

arrived = {}
lock = threading.Condition()

class App(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        now = time.perf_counter()
        if self.path.startswith("/configuration/"):
            for key in json.loads(body or b"{}").get("items", {}):
                with lock:
                    arrived.setdefault(key, now)
                    lock.notify_all()
        self.send_response(200)
        self.end_headers()
    def do_GET(self):
        self.send_response(404)
        self.end_headers()
    def log_message(self, *args):
        pass

app_port = free_port()
server = http.server.ThreadingHTTPServer(("127.0.0.1", app_port), App)
threading.Thread(target=server.serve_forever, daemon=True).start()
http_port, grpc_port, metrics_port = free_port(), free_port(), free_port()
os.makedirs(f"{work}/res")
with open(f"{work}/res/resources.yaml", "w") as f:
    f.write(f"""apiVersion: sharedruntime.io/v1alpha1
kind: Tenant
metadata:
  name: fn
spec:
  appId: fn
  apiToken:
    value: fn-token
  appEndpoint: http://127.0.0.1:{app_port}
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: config
spec:
  type: configuration.redis
  version: v1
  metadata:
    - name: redisHost
      value: 127.0.0.1:{redis_port}
""")
runtime = subprocess.Popen(["dotnet", dll, "--resources-path", f"{work}/res", "--state-dir", f"{work}/state", "--handoff-socket", "none",
                            "--dapr-http-port", str(http_port), "--dapr-grpc-port", str(grpc_port), "--metrics-port", str(metrics_port),
                            "--log-level", "error"])
try:
    base = f"http://127.0.0.1:{http_port}"
    for _ in range(300):
        try:
            if urllib.request.urlopen(f"{base}/v1.0/healthz", timeout=1).status == 204:
                break
        except Exception:
            time.sleep(0.1)
    keys = [f"k{i}" for i in range(changes)]
    query = "&".join(f"key={key}" for key in keys)
    request = urllib.request.Request(f"{base}/v1.0/configuration/config/subscribe?{query}", headers={"dapr-api-token": "fn-token"})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            answer.read()
    except urllib.error.HTTPError as error:
        sys.exit(f"subscribe: {error.code} {error.read().decode()}")
    time.sleep(1)  # the store's watcher is in place
    latencies = []
    for i, key in enumerate(keys):
        start = time.perf_counter()
        subprocess.run(["redis-cli", "-p", str(redis_port), "SET", f"fn||{key}", f"v{i}||{i + 1}"], check=True, stdout=subprocess.DEVNULL)
        with lock:
            lock.wait_for(lambda: key in arrived, timeout=10)
        if key not in arrived:
            print(f"{key}: no update within 10 s")
            continue
        latencies.append((arrived[key] - start) * 1000)
        time.sleep(0.05)
    if not latencies:
        sys.exit("no update arrived")
    latencies.sort()
    p90 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.9))]
    print(f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; {len(latencies)} of {changes} changes arrived")
    print("change in Redis (redis-cli SET, its own start-up included) to the app's POST /configuration/config/<key>:")
    print(f"min {latencies[0]:.1f} ms, median {statistics.median(latencies):.1f} ms, p90 {p90:.1f} ms, max {latencies[-1]:.1f} ms")
finally:
    runtime.terminate()
    runtime.wait(timeout=10)
PY
