#!/usr/bin/env bash
# Reload cost with many tenants: the runtime starts with N tenants (default 10,000) in one resource file, then one new
# Tenant file at a time is renamed into the watched folder. For each: the time from the rename to the first
# `GET /v1.0/metadata` 200 with the new tenant's token (polled every 2 ms), the runtime's CPU for the reload (utime+stime
# from /proc/PID/stat, read before the rename and 1.5 s after it, so background work such as the last-good cache write
# is counted; beside it the same window's CPU while idle just before, and the difference), and VmRSS before the first
# and after the last addition, split into anonymous memory and file pages (RssAnon / RssFile from /proc/PID/status) and,
# of the file pages, those of the runtime's own executable or .dll (from /proc/PID/smaps). Builds are taken in turn,
# side by side.
# Usage: bench/startup/reload.sh [tenants] [additions]
#   RUNTIME_DLLS="label=path.dll label2=path2.dll" compares several builds (default: this worktree's Release build).
#   RUNTIME_ARGS="--flag value" adds arguments to every build's command line; RUNTIME_ARGS_<label> and RUNTIME_ENV_<label>
#   ("NAME=value NAME2=value") add arguments and environment variables to one build only, so that one binary can be
#   measured under several labels (for example `--release-startup-pages false`, or DOTNET_GCgen0size=...).
#   SMAPS_DIFF=N also prints, per build and start, RSS after each addition and the N mappings whose resident memory grew most over the additions.
#   The runtime is pinned to core 0, the prober to core 1.
set -euo pipefail
cd "$(dirname "$0")/../.."
tenants=${1:-10000}
additions=${2:-8}
if [[ -z "${RUNTIME_DLLS:-}" ]]; then
  dotnet build src/SharedRuntime.Host -c Release -nologo -v quiet >/dev/null
  RUNTIME_DLLS="this=src/SharedRuntime.Host/bin/Release/net10.0/shared-runtime.dll"
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "$(date -u +%Y-%m-%d), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); $tenants tenants, $additions additions per build"
taskset -c 1 python3 - "$work" "$tenants" "$additions" $RUNTIME_DLLS <<'PY'
import os, shutil, statistics, subprocess, sys, time, http.client

work, count, additions, builds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), [b.split("=", 1) for b in sys.argv[4:]]
tick = os.sysconf("SC_CLK_TCK")
component = "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: store\nspec:\n  type: state.in-memory\n"
def tenant(name, token):
    return f"apiVersion: sharedruntime.io/v1alpha1\nkind: Tenant\nmetadata:\n  name: {name}\nspec:\n  apiToken: {{value: {token}}}\n"
many = component + "".join("---\n" + tenant(f"t{i}", f"token-{i}") for i in range(count))

def cpu(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / tick  # utime + stime, ms

def rss(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024

def split(pid, binary):
    """VmRSS, RssAnon, RssFile and the executable's (or .dll's) own resident pages, MB; and Rss per mapping, kB."""
    values = {}
    for line in open(f"/proc/{pid}/status"):
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile"):
            values[key] = int(rest.split()[0]) / 1024
    mappings, own, current = {}, 0, None
    for line in open(f"/proc/{pid}/smaps"):
        fields = line.split()
        if "-" in fields[0] and not fields[0].endswith(":"):
            path = fields[5] if len(fields) > 5 else ""
            current = (fields[0].split("-")[0], fields[1], path)
        elif fields[0] == "Rss:":
            kb = int(fields[1])
            mappings[current] = kb
            if current[2] == binary:
                own += kb
    values["own"] = own / 1024
    return values, mappings

def status(port, path, token=None):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        c.request("GET", path, headers={"dapr-api-token": token} if token else {})
        r = c.getresponse(); r.read(); c.close()
        return r.status
    except OSError:
        return 0

extra = os.environ.get("RUNTIME_ARGS", "").split()
smaps_diff = int(os.environ.get("SMAPS_DIFF", "0"))

def measure(label, dll, round_):
    folder = f"{work}/{label}-{round_}"
    shutil.rmtree(folder, ignore_errors=True); os.makedirs(f"{folder}/res")
    open(f"{folder}/res/resources.yaml", "w").write(many)
    port = 3771
    run = ["taskset", "-c", "0", "dotnet", dll] if dll.endswith(".dll") else ["taskset", "-c", "0", dll]
    env = dict(os.environ, **dict(kv.split("=", 1) for kv in os.environ.get(f"RUNTIME_ENV_{label}", "").split()))
    p = subprocess.Popen(run + ["--resources-path", f"{folder}/res", "--state-dir", f"{folder}/state", "--handoff-socket", "none",
        "--dapr-http-port", str(port), "--dapr-grpc-port", str(port + 1), "--metrics-port", str(port + 2), "--log-level", "error"]
        + extra + os.environ.get(f"RUNTIME_ARGS_{label}", "").split(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    binary = os.path.realpath(dll)
    try:
        start = time.monotonic()
        while status(port, "/v1.0/healthz") != 204:
            if time.monotonic() - start > 300: raise SystemExit(f"{label}: not ready in 300 s")
            time.sleep(0.05)
        ready = time.monotonic() - start
        time.sleep(5)
        before_rss = rss(p.pid)
        before, before_maps = split(p.pid, binary)
        usable, cpus = [], []
        idles, series = [], []
        for k in range(additions):
            i0 = cpu(p.pid); time.sleep(1.5); idles.append(cpu(p.pid) - i0)  # an idle window of the same length just before
            token = f"new-token-{round_}-{k}"
            temp = f"{folder}/res/.new-{k}.tmp"
            open(temp, "w").write(tenant(f"new-{k}", token))
            c0 = cpu(p.pid); t0 = time.monotonic()
            os.rename(temp, f"{folder}/res/new-{k}.yaml")
            while status(port, "/v1.0/metadata", token) != 200:
                if time.monotonic() - t0 > 120: raise SystemExit(f"{label}: tenant not usable in 120 s")
                time.sleep(0.002)
            usable.append((time.monotonic() - t0) * 1000)
            time.sleep(max(0, 1.5 - (time.monotonic() - t0)))
            cpus.append(cpu(p.pid) - c0)
            series.append(split(p.pid, binary)[0])
        after, after_maps = split(p.pid, binary)
        if smaps_diff:
            grown = sorted(((after_maps.get(m, 0) - before_maps.get(m, 0), m) for m in set(after_maps) | set(before_maps)), reverse=True)
            print(f"{label} start {round_ + 1}: after each addition, MB (RSS/anon/file/own): "
                  + " ".join(f"{v['VmRSS']:.1f}/{v['RssAnon']:.1f}/{v['RssFile']:.1f}/{v['own']:.1f}" for v in [before] + series), flush=True)
            print(f"{label} start {round_ + 1}: mappings that grew most over {additions} additions (kB, start, perms, path):", flush=True)
            for kb, (start, perms, path) in grown[:smaps_diff]:
                print(f"  {kb:+6d} kB  {start} {perms} {path or '[anon]'} (now {after_maps.get((start, perms, path), 0)} kB)", flush=True)
        return dict(before=before, after=after, ready=ready, usable=usable, cpu=cpus, net=[c - i for c, i in zip(cpus, idles)], idle=statistics.median(idles), rss0=before_rss, rss1=rss(p.pid))
    finally:
        p.terminate(); p.wait()

results = {label: [] for label, _ in builds}
for round_ in range(2):  # builds in turn, twice
    for label, dll in builds:
        results[label].append(measure(label, dll, round_))
print("| build | ready s | usable median ms | usable max ms | CPU ms in the 1.5 s after an addition (median) | idle CPU ms per 1.5 s (median) | addition minus the idle window before it (median) | RSS before MB | RSS after MB | anon before -> after MB | file before -> after MB | own binary before -> after MB |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for label, rs in results.items():
    usable = [u for r in rs for u in r["usable"]]; cpus = [c for r in rs for c in r["cpu"]]
    print(f"| {label} | {statistics.median(r['ready'] for r in rs):.2f} | {statistics.median(usable):.0f} | {max(usable):.0f} | "
          f"{statistics.median(cpus):.0f} | {statistics.median(r['idle'] for r in rs):.0f} | {statistics.median(n for r in rs for n in r['net']):.0f} | "
          f"{statistics.median(r['rss0'] for r in rs):.0f} | {statistics.median(r['rss1'] for r in rs):.0f} | "
          + " | ".join(f"{statistics.median(r['before'][k] for r in rs):.1f} -> {statistics.median(r['after'][k] for r in rs):.1f}" for k in ("RssAnon", "RssFile", "own")) + " |")
PY
