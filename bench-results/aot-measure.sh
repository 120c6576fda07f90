#!/usr/bin/env bash
# Startup and idle-memory figures for the router: time from exec to the first proxied 200, and VmRSS when idle.
# Usage: bench-results/aot-measure.sh LABEL RUNS -- COMMAND...   (COMMAND gets the router's own arguments appended)
# Needs python3 (the upstream) and curl. Ports: upstream 18080, router 18000, admin 18901.
set -euo pipefail
label=$1; runs=$2; shift 3
work=$(mktemp -d)
trap 'kill $up 2>/dev/null || true; rm -rf "$work"' EXIT
echo hello > "$work/index.html"
(cd "$work" && exec python3 -m http.server 18080 --bind 127.0.0.1 >/dev/null 2>&1) & up=$!
cat > "$work/router.json" <<JSON
{ "routes": [ { "id": "all", "match": { "pathPrefix": "/" }, "cluster": "up" } ],
  "clusters": [ { "id": "up", "destinations": [ { "address": "127.0.0.1:18080" } ] } ] }
JSON
until curl -s -o /dev/null http://127.0.0.1:18080/; do sleep 0.05; done
args=(--config "$work/router.json" --listen 127.0.0.1:18000 --admin 127.0.0.1:18901)
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
for i in $(seq "$runs"); do
  # 1. Time to first proxied 200: curl in a tight loop from the moment the process is started.
  start=$(date +%s%N)
  "$@" "${args[@]}" >/dev/null 2>&1 & pid=$!
  until [ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:18000/index.html)" = 200 ]; do :; done
  first=$(( ($(date +%s%N) - start) / 1000000 ))
  kill -TERM $pid; wait $pid || true
  # 2. Idle RSS: ready (admin /healthz answers, no proxied request yet), then after one proxied request.
  "$@" "${args[@]}" >/dev/null 2>&1 & pid=$!
  until curl -s -o /dev/null http://127.0.0.1:18901/healthz; do sleep 0.02; done
  sleep 1; idle=$(rss $pid)
  curl -s -o /dev/null http://127.0.0.1:18000/index.html
  sleep 1; after=$(rss $pid)
  kill -TERM $pid; wait $pid || true
  echo "$label run=$i first_200_ms=$first rss_idle_kb=$idle rss_after_1_request_kb=$after"
done
