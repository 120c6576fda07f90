#!/usr/bin/env bash
# Runs one SharpFuzz/AFL++ target: fuzz/run.sh request|response|chunked SECONDS
# Installs what it needs (afl++ from Debian, the sharpfuzz instrumenter as a local dotnet tool), builds the harness
# into fuzz/out/TARGET, instruments the parser assembly, runs afl-fuzz for SECONDS and prints its summary.
# Crashes and hangs land in fuzz/out/TARGET/findings/default/{crashes,hangs}; replay one with
#   dotnet fuzz/out/TARGET/bin/Router.Fuzz.dll TARGET --file PATH
set -euo pipefail
target=${1:?usage: run.sh request|response|chunked SECONDS}
seconds=${2:-600}
here=$(cd "$(dirname "$0")" && pwd)
out="$here/out/$target"

if ! command -v afl-fuzz >/dev/null; then
  apt-get update -q && apt-get install -y -q afl++
fi
if [ ! -x "$here/.tools/sharpfuzz" ]; then
  dotnet tool install SharpFuzz.CommandLine --version 2.3.0 --tool-path "$here/.tools"
fi

rm -rf "$out"
dotnet build "$here/Router.Fuzz/Router.Fuzz.csproj" -c Release -o "$out/bin" -nologo -v q
"$here/.tools/sharpfuzz" "$out/bin/Router.Fuzz.Parsers.dll"

# AFL_SKIP_BIN_CHECK: the target is `dotnet`, not an afl-instrumented binary (SharpFuzz does the instrumenting).
# AFL_NO_AFFINITY: shared machine, don't pin cores. The two AFL_I_DONT_CARE flags keep afl-fuzz from refusing to
# start over the host's core_pattern / cpufreq settings, which a container can't change.
export AFL_SKIP_BIN_CHECK=1 AFL_NO_AFFINITY=1 AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 \
  AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 DOTNET_TieredPGO=0
afl-fuzz -V "$seconds" -t 5000 -m none -i "$here/seeds/$target" -o "$out/findings" \
  -- dotnet "$out/bin/Router.Fuzz.dll" "$target" > "$out/afl.log" 2>&1 || true

stats="$out/findings/default/fuzzer_stats"
if [ -f "$stats" ]; then
  grep -E '^(run_time|execs_done|execs_per_sec|corpus_count|saved_crashes|saved_hangs|bitmap_cvg|stability)' "$stats"
else
  tail -n 40 "$out/afl.log"
  exit 1
fi
