#!/usr/bin/env bash
# Coverage-guided fuzzing of the parsers of tenant input (SharpFuzz + afl-fuzz): a subscription rule's match, a
# circuit breaker's trip expression, a resource YAML file, the invoke relay's readers of HTTP/1.1 heads and chunked bodies, and its HPACK decoder of h2c answers. Each target runs for a bounded time; the script fails
# when afl-fuzz found a crash (an exception other than the parser's own refusal, a stack overflow) or a hang.
#   scripts/fuzz-parsers.sh [seconds per target, default 60] [targets, default "match trip yaml relay hpack"]
# Crashing inputs are kept in $OUT/<target>/default/crashes (OUT defaults to a temporary folder).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
targets="${2:-match trip yaml relay hpack}"
out="${OUT:-$(mktemp -d /tmp/sharedruntime-fuzz-XXXXXX)}"
project=tests/SharedRuntime.Fuzz

if ! command -v afl-fuzz >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "installing afl++"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends afl++ >/dev/null
fi
tools="$out/tools"
if [ ! -x "$tools/sharpfuzz" ]; then
  dotnet tool install SharpFuzz.CommandLine --version 2.3.0 --tool-path "$tools" >/dev/null
fi

build="$out/build"
dotnet build "$project" -c Release -nologo -v quiet -o "$build"
# Only what is instrumented reports coverage: the runtime's parsers and the YAML library under them.
for dll in SharedRuntime.Core.dll SharedRuntime.Api.dll YamlDotNet.dll; do
  "$tools/sharpfuzz" "$build/$dll" >/dev/null
done

export AFL_SKIP_BIN_CHECK=1 AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_AFFINITY=1
failed=0
for target in $targets; do
  echo "fuzzing $target for ${seconds}s"
  afl-fuzz -i "$project/corpus/$target" -o "$out/$target" -V "$seconds" -t 5000 -m none -- \
    dotnet "$build/SharedRuntime.Fuzz.dll" "$target" > "$out/$target.log" 2>&1 || { echo "afl-fuzz failed, see $out/$target.log"; tail -20 "$out/$target.log"; failed=1; continue; }
  stats="$out/$target/default/fuzzer_stats"
  execs=$(awk -F': *' '$1 ~ /^execs_done/ {print $2}' "$stats")
  paths=$(awk -F': *' '$1 ~ /^corpus_count/ {print $2}' "$stats")
  crashes=$(find "$out/$target/default/crashes" -type f ! -name README.txt | wc -l)
  hangs=$(find "$out/$target/default/hangs" -type f | wc -l)
  echo "$target: $execs executions, $paths inputs in the corpus, $crashes crashes, $hangs hangs"
  if [ "$crashes" -gt 0 ] || [ "$hangs" -gt 0 ]; then
    echo "  inputs: $out/$target/default/crashes $out/$target/default/hangs"
    failed=1
  fi
done
exit "$failed"
