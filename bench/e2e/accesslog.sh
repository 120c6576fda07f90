#!/usr/bin/env bash
# Access-log overhead under load: the same router with and without --access-log, in alternating rounds, against an
# nginx upstream (12-byte body). Writes bench-results/accesslog-<date>.md. Usage: bash bench/e2e/accesslog.sh [rounds] [secs]
set -euo pipefail
ROUNDS=${1:-3}
SECS=${2:-8}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
WORK=$(mktemp -d)
command -v wrk >/dev/null && command -v nginx >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk nginx >/dev/null; }
dotnet build "$ROOT/Router.Net" -c Release -v q >/dev/null
mkdir -p "$WORK/www"
sed -e "s|@USER@|user $(id -un);|; s|@DIR@|$WORK|g; s|@PORT@|19300|" "$HERE/upstream.nginx.conf.in" >"$WORK/nginx.conf"
head -c 1048576 /dev/zero >"$WORK/www/1m"
nginx -c "$WORK/nginx.conf"
trap 'nginx -s stop -c "$WORK/nginx.conf" 2>/dev/null || true; rm -rf "$WORK"' EXIT
echo '{"routes":[{"id":"r","match":{"pathPrefix":"/"},"cluster":"c"}],"clusters":[{"id":"c","destinations":[{"address":"127.0.0.1:19300"}]}]}' >"$WORK/router.json"
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
run() { # label, extra args...
  local label=$1; shift
  DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1 "$ROOT/Router.Net/bin/Release/net10.0/Router.Net" --config "$WORK/router.json" \
    --listen 127.0.0.1:19301 --admin 127.0.0.1:19302 "$@" >/dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 50); do curl -sf http://127.0.0.1:19301/ >/dev/null && break; sleep 0.1; done
  wrk -t2 -c64 -d3s http://127.0.0.1:19301/ >/dev/null
  local t0; t0=$(ticks $pid)
  local out; out=$(wrk -t2 -c64 -d"${SECS}s" --latency http://127.0.0.1:19301/)
  local t1; t1=$(ticks $pid)
  kill $pid; wait $pid 2>/dev/null || true
  local req rps p99
  req=$(echo "$out" | awk '/requests in/ {print $1}')
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  echo "| $label | $rps | $p99 | $(echo "scale=2; ($t1-$t0)*1000000/$(getconf CLK_TCK)/$req" | bc) |"
}
rows=""
for r in $(seq "$ROUNDS"); do
  rows+="$(run "without, round $r")"$'\n'
  rows+="$(run "with --access-log FILE, round $r" --access-log "$WORK/access.log")"$'\n'
  lines=$(wc -l <"$WORK/access.log"); rm -f "$WORK/access.log"
  rows+="| (lines written in round $r: $lines) | | | |"$'\n'
done
out="$ROOT/bench-results/accesslog-$(date -u +%F).md"
{
  echo "# Access log overhead under load, $(date -u '+%F %H:%M') UTC"
  echo
  echo "- Machine: $(nproc) cores, $(lscpu | awk -F: '/Model name/ {gsub(/^ +/,"",$2); print $2}'), $(uname -r); shared, so compare rows of one run only."
  echo "- Command: \`bash bench/e2e/accesslog.sh $ROUNDS $SECS\` (wrk -t2 -c64 -d${SECS}s on GET / through the router to an nginx upstream, 12-byte body)."
  echo "- CPU µs/req: the router's utime+stime over the measured wrk run divided by requests served."
  echo
  echo "| router | rps | p99 | CPU µs/req |"
  echo "|---|---|---|---|"
  printf "%s" "$rows"
} >"$out"
cat "$out"
