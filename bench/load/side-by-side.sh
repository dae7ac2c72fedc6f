# Sourced by kestrel.sh and grpc.sh: warms both servers up (WARMUP_SECONDS under load each, default 60: under
# steady load, tiered compilation with PGO finishes its last tier-up only after about 40 s on one core, and a round
# measured before that charges the JIT's work to the server with more code), then runs $rounds rounds alternating runtime_get and
# bare_get (each prints "<rate> <server CPU µs per request>"), and writes the table and the medians to stdout and
# to $out when set. Arguments: the run's description, the rate's unit ("req/s", "calls/s"), the unit of one request
# ("req", "call"), the bare server's label.
side_by_side() {
  local description=$1 rate_unit=$2 unit=$3 bare_label=$4 r a ac b bc round_seconds=$seconds
  seconds=$(( ${WARMUP_SECONDS:-60} / 3 ))
  for _ in 1 2 3; do runtime_get >/dev/null; bare_get >/dev/null; done   # warm-up of both: JIT and tiered compilation
  seconds=$round_seconds
  {
    echo "$(date -u +%Y-%m-%d), $(nproc) cores, load average before: $(cut -d' ' -f1-3 /proc/loadavg); $description, ${seconds}s per round after ${WARMUP_SECONDS:-60}s of warm-up on each"
    echo
    echo "| round | runtime $rate_unit | $bare_label $rate_unit | ratio | runtime CPU µs/$unit | bare CPU µs/$unit | CPU ratio (bare/runtime) |"
    echo "|---|---|---|---|---|---|---|"
    for r in $(seq "$rounds"); do
      read -r a ac < <(runtime_get)
      read -r b bc < <(bare_get)
      python3 -c "print(f'| $r | {$a:,.0f} | {$b:,.0f} | {$a/$b:.2f}x | {$ac:.1f} | {$bc:.1f} | {$bc/$ac:.2f}x |')"
      echo "$a $b $ac $bc" >> "$work/rounds.txt"
    done
    echo
    python3 - "$work/rounds.txt" "$unit" <<'PY'
import statistics, sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1])]
rate = statistics.median(a / b for a, b, _, _ in rows)
cpu = statistics.median(bc / ac for _, _, ac, bc in rows)
print(f"median throughput ratio: {rate:.2f}x; median CPU-per-{sys.argv[2]} ratio (bare/runtime): {cpu:.2f}x")
PY
    echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
  } | tee ${out:+"$out"}
}
