#!/usr/bin/env bash
# Quick A/B of router builds or settings against nginx as a proxy, alternating rounds in one run (the full comparison
# is `make bench-e2e`). Same upstream and proxy configs as run.sh. Needs wrk and nginx (run.sh installs them).
#
#   VARIANTS="name|ENV=1 ENV2=2;other|BIN=/path/to/Router.Net" bench/e2e/ab.sh
#
# Each variant is a router process; BIN= picks its binary (default: the Release build), other words are environment
# settings. Knobs: C (connections, 64), D (seconds per measurement, 8), ROUNDS (2), PATHQ (/ or /1m), BASE (19180),
# HEADER (one extra request header for wrk, e.g. "Connection: close" for a new connection per request).
# Prints one line per round and target: rps, p99, transfer/s, CPU µs per request (utime+stime ÷ requests), and that
# CPU split into user and system time.
set -u
cd "$(dirname "$0")/../.."
ROOT=$PWD; HERE=$ROOT/bench/e2e; T=$(mktemp -d /tmp/router-ab.XXXXXX); mkdir -p "$T/up/www" "$T/ng"
BASE=${BASE:-19180}; C=${C:-64}; D=${D:-8}; R=${ROUNDS:-2}; PATHQ=${PATHQ:-/}
export PATH=$PATH:/usr/sbin
USER_LINE=; if [ "$(id -u)" -eq 0 ]; then USER_LINE="user root;"; fi
head -c 1048576 /dev/urandom >"$T/up/www/1m"
render() { sed -e "s|@DIR@|$2|g" -e "s|@PORT@|$3|g" -e "s|@UPSTREAM_PORT@|$BASE|g" -e "s|@USER@|$USER_LINE|g" "$1"; }
render "$HERE/upstream.nginx.conf.in" "$T/up" "$BASE" >"$T/up/nginx.conf"
nginx -p "$T/up" -c "$T/up/nginx.conf" -g 'daemon off;' & PIDS="$!"
render "$HERE/proxy.nginx.conf.in" "$T/ng" $((BASE + 2)) >"$T/ng/nginx.conf"
nginx -p "$T/ng" -c "$T/ng/nginx.conf" -g 'daemon off;' & NGP=$!; PIDS="$PIDS $NGP"
render "$HERE/router.json.in" "$T" 0 >"$T/router.json"
trap 'kill $PIDS 2>/dev/null; wait 2>/dev/null; rm -rf "$T"' EXIT
declare -A PORTOF PIDOF; NAMES=(nginx); PORTOF[nginx]=$((BASE + 2)); PIDOF[nginx]=$NGP
i=10
IFS=';' read -ra VS <<<"${VARIANTS:-router|X=1}"
for v in "${VS[@]}"; do
    name=${v%%|*}; envs=${v#*|}; bin=$ROOT/Router.Net/bin/Release/net10.0/Router.Net
    for e in $envs; do case $e in BIN=*) bin=${e#BIN=} ;; esac; done
    port=$((BASE + i)); i=$((i + 1))
    # shellcheck disable=SC2086
    env $envs DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1 "$bin" --config "$T/router.json" \
        --listen "127.0.0.1:$port" --admin "127.0.0.1:$((port + 100))" >"$T/$name.log" 2>&1 &
    PIDOF[$name]=$!; PORTOF[$name]=$port; PIDS="$PIDS $!"; NAMES+=("$name")
done
for n in "${NAMES[@]}"; do
    for _ in $(seq 75); do curl -s -o /dev/null "http://127.0.0.1:${PORTOF[$n]}/" && break; sleep 0.2; done
done
# utime and stime (clock ticks) of a process and its children, as "user system".
ticks() { local u=0 s=0 p; for p in $(pgrep -P "$1") "$1"; do read -r a b < <(awk '{print $14, $15}' "/proc/$p/stat"); u=$((u + a)); s=$((s + b)); done; echo "$u $s"; }
HDR=(); if [ -n "${HEADER:-}" ]; then HDR=(-H "$HEADER"); fi
for n in "${NAMES[@]}"; do wrk -t2 -c"$C" -d3s "${HDR[@]}" "http://127.0.0.1:${PORTOF[$n]}$PATHQ" >/dev/null; done
for round in $(seq "$R"); do
    for n in "${NAMES[@]}"; do
        read -r u0 s0 < <(ticks "${PIDOF[$n]}")
        out=$(wrk -t2 -c"$C" -d"${D}s" --latency "${HDR[@]}" "http://127.0.0.1:${PORTOF[$n]}$PATHQ")
        read -r u1 s1 < <(ticks "${PIDOF[$n]}")
        req=$(echo "$out" | awk '/requests in/ {print $1}')
        echo "r$round $n c$C rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}') p99=$(echo "$out" | awk '$1=="99%" {print $2}')" \
            "xfer=$(echo "$out" | awk '/Transfer\/sec/ {print $2}') cpu_us_per_req=$(python3 -c "print(round(($u1+$s1-$u0-$s0)*10000/$req,2))")" \
            "usr=$(python3 -c "print(round(($u1-$u0)*10000/$req,2))") sys=$(python3 -c "print(round(($s1-$s0)*10000/$req,2))")"
    done
done
