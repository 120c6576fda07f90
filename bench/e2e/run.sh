#!/usr/bin/env bash
# End-to-end comparison (`make bench-e2e`): Router.Net against nginx, HAProxy and YARP as reverse proxies,
# plus the upstream hit directly, all in one run through the same nginx upstream on 127.0.0.1.
# Writes bench-results/e2e-<date>.md. Knobs (env): DURATION (s per measurement, default 10), WARMUP (s, 5),
# ROUNDS (2), C_SMALL (64), C_LARGE (256), C_BIG (16, connections for the 1 MiB body), IDLE_CONNS (2000),
# SOCKETS (1: also run Router on the runtime's sockets instead of its epoll loops), BASE_PORT (18080), OUT (results file),
# KEEP_WORK (1: keep the temp dir with configs, logs and raw wrk output), PIN (1: every proxy on the CPUs in PROXY_CPUS,
# default 1, and wrk with the upstream on LOAD_CPUS, default 0, so no proxy shares a core with the load generator),
# FLOOR (1: also measure bench/floor/relay.c, a C relay that parses nothing, on the small-body scenarios; needs cc).
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$PWD
HERE=$ROOT/bench/e2e
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-5}
ROUNDS=${ROUNDS:-2}
C_SMALL=${C_SMALL:-64}
C_LARGE=${C_LARGE:-256}
C_BIG=${C_BIG:-16}
IDLE_CONNS=${IDLE_CONNS:-2000}
SOCKETS=${SOCKETS:-1}
FLOOR=${FLOOR:-1}
BASE_PORT=${BASE_PORT:-18080}
OUT=${OUT:-$ROOT/bench-results/e2e-$(date +%F).md}
PIN=${PIN:-0}
PROXY_CPUS=${PROXY_CPUS:-1}
LOAD_CPUS=${LOAD_CPUS:-0}
ON_PROXY=(); ON_LOAD=()
if [ "$PIN" -eq 1 ]; then ON_PROXY=(taskset -c "$PROXY_CPUS"); ON_LOAD=(taskset -c "$LOAD_CPUS"); fi
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

log() { echo "[bench-e2e $(date +%T)] $*" >&2; }

# --- tools: Debian packages only -----------------------------------------------------------------------------
SUDO=
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
missing=0
for tool in wrk nginx haproxy; do
    command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || missing=1
done
if [ "$missing" -eq 1 ]; then
    log "installing wrk nginx haproxy from Debian packages"
    $SUDO apt-get update
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y wrk nginx haproxy
fi
export PATH=$PATH:/usr/sbin
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# --- build ---------------------------------------------------------------------------------------------------
log "building Router.Net and the YARP host (Release)"
dotnet build Router.Net/Router.Net.csproj -c Release -v q -nologo >/dev/null
dotnet build bench/YarpHost/YarpHost.csproj -c Release -v q -nologo >/dev/null
ROUTER_BIN=$ROOT/Router.Net/bin/Release/net10.0/Router.Net
YARP_BIN=$ROOT/bench/YarpHost/bin/Release/net10.0/YarpHost

# --- work dir and process bookkeeping ------------------------------------------------------------------------
T=$(mktemp -d /tmp/router-e2e.XXXXXX)
mkdir -p "$T/wrk"
: >"$T/results.tsv"
: >"$T/mem.tsv"
declare -A PORT MAIN ADMIN
STARTED=()

cleanup() {
    local pid
    for pid in "${STARTED[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${STARTED[@]}"; do wait "$pid" 2>/dev/null || true; done
    STARTED=()
}
on_exit() {
    cleanup
    if [ "${KEEP_WORK:-0}" -eq 1 ]; then log "work dir kept: $T"; else rm -rf "$T"; fi
}
trap on_exit EXIT

USER_LINE=
if [ "$(id -u)" -eq 0 ]; then USER_LINE="user root;"; fi

render() { # template dir port -> writes dir/conf
    sed -e "s|@DIR@|$2|g" -e "s|@PORT@|$3|g" -e "s|@UPSTREAM_PORT@|$BASE_PORT|g" -e "s|@USER@|$USER_LINE|g" "$1"
}

wait_port() { # port
    local i
    for i in $(seq 1 150); do
        if curl -s -o /dev/null "http://127.0.0.1:$1/"; then return 0; fi
        sleep 0.2
    done
    log "nothing answers on port $1"; return 1
}

pids_of() { # target -> main pid and its direct children (nginx workers)
    local main=${MAIN[$1]}
    echo "$main" $(pgrep -P "$main" || true)
}

ticks() { # pids... -> utime+stime summed, in CLK_TCK ticks (fields 14-15 of /proc/PID/stat)
    local total=0 pid
    for pid in "$@"; do
        if [ -r "/proc/$pid/stat" ]; then
            # Drop "pid (comm) " first so a comm with spaces can't shift the fields: 14-15 become 12-13.
            total=$((total + $(sed 's/^.*) //' "/proc/$pid/stat" | awk '{print $12 + $13}')))
        fi
    done
    echo "$total"
}

rss_kb() { # pids... -> VmRSS summed (kB)
    local total=0 pid v
    for pid in "$@"; do
        v=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
        total=$((total + ${v:-0}))
    done
    echo "$total"
}

busy_pct() { # seconds -> whole-machine busy % over that window, from /proc/stat
    local a b
    a=($(head -1 /proc/stat)); sleep "$1"; b=($(head -1 /proc/stat))
    local idle=$(( (b[4] + b[5]) - (a[4] + a[5]) )) total=0 i
    for i in 1 2 3 4 5 6 7 8; do total=$((total + b[i] - a[i])); done
    echo $(( total > 0 ? 100 * (total - idle) / total : 0 ))
}

# --- machine and background load before we start anything ----------------------------------------------------
BUSY_BEFORE=$(busy_pct 5)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# --- upstream ------------------------------------------------------------------------------------------------
UP=$T/upstream
mkdir -p "$UP/www"
head -c 1048576 /dev/urandom >"$UP/www/1m"
render "$HERE/upstream.nginx.conf.in" "$UP" "$BASE_PORT" >"$UP/nginx.conf"
"${ON_LOAD[@]}" nginx -p "$UP" -c "$UP/nginx.conf" -g 'daemon off;' &
MAIN[direct]=$!; STARTED+=($!); PORT[direct]=$BASE_PORT
wait_port "$BASE_PORT"
body=$(curl -s "http://127.0.0.1:$BASE_PORT/")
[ "${#body}" -eq 11 ] || { log "upstream body is not 12 bytes"; exit 1; }   # $(...) strips the final \n

# --- proxies -------------------------------------------------------------------------------------------------
ROUTER_ENV="DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1 DOTNET_TieredPGO=1"
render "$HERE/router.json.in" "$T" 0 >"$T/router.json"
start_router() { # target port admin_port transport(epoll/sockets)
    local extra=()
    if [ "$4" = sockets ]; then extra=(ROUTER_TRANSPORT=sockets); fi
    "${ON_PROXY[@]}" env "${extra[@]}" DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1 DOTNET_TieredPGO=1 "$ROUTER_BIN" --config "$T/router.json" \
        --listen "127.0.0.1:$2" --admin "127.0.0.1:$3" >"$T/$1.log" 2>&1 &
    MAIN[$1]=$!; STARTED+=($!); PORT[$1]=$2; ADMIN[$1]=$3
    wait_port "$2"
}
start_router router $((BASE_PORT + 1)) $((BASE_PORT + 11)) epoll
TARGETS=(direct router)
if [ "$SOCKETS" -eq 1 ]; then
    start_router router-sockets $((BASE_PORT + 5)) $((BASE_PORT + 15)) sockets
    TARGETS+=(router-sockets)
fi

NG=$T/nginx-proxy
mkdir -p "$NG"
render "$HERE/proxy.nginx.conf.in" "$NG" $((BASE_PORT + 2)) >"$NG/nginx.conf"
"${ON_PROXY[@]}" nginx -p "$NG" -c "$NG/nginx.conf" -g 'daemon off;' &
MAIN[nginx]=$!; STARTED+=($!); PORT[nginx]=$((BASE_PORT + 2))
wait_port $((BASE_PORT + 2))

render "$HERE/haproxy.cfg.in" "$T" $((BASE_PORT + 3)) >"$T/haproxy.cfg"
"${ON_PROXY[@]}" haproxy -db -f "$T/haproxy.cfg" >"$T/haproxy.log" 2>&1 &
MAIN[haproxy]=$!; STARTED+=($!); PORT[haproxy]=$((BASE_PORT + 3))
wait_port $((BASE_PORT + 3))

"${ON_PROXY[@]}" "$YARP_BIN" --listen "127.0.0.1:$((BASE_PORT + 4))" --upstream "127.0.0.1:$BASE_PORT" >"$T/yarp.log" 2>&1 &
MAIN[yarp]=$!; STARTED+=($!); PORT[yarp]=$((BASE_PORT + 4))
wait_port $((BASE_PORT + 4))
TARGETS+=(nginx haproxy yarp)

# The floor: what a proxy that does no HTTP work at all costs here (same segments and socket calls per request).
# Small bodies only: it is not a proxy, so its 1 MiB and idle-memory figures would mean nothing.
if [ "$FLOOR" -eq 1 ] && command -v cc >/dev/null 2>&1; then
    cc -O2 -D_GNU_SOURCE -o "$T/relay" "$ROOT/bench/floor/relay.c" -lpthread
    "${ON_PROXY[@]}" env UP="$BASE_PORT" MODE=epoll "$T/relay" --listen "127.0.0.1:$((BASE_PORT + 6))" >"$T/floor.log" 2>&1 &
    MAIN[floor]=$!; STARTED+=($!); PORT[floor]=$((BASE_PORT + 6))
    wait_port $((BASE_PORT + 6))
    TARGETS+=(floor)
elif [ "$FLOOR" -eq 1 ]; then
    log "no C compiler: the floor relay is left out"; FLOOR=0
fi
small_only() { [ "$1" = floor ]; }

declare -A RSS_FRESH
for t in "${TARGETS[@]}"; do RSS_FRESH[$t]=$(rss_kb $(pids_of "$t")); done

memory_phase() { # phase label -> mem.tsv rows: VmRSS before and with IDLE_CONNS idle keep-alive connections
    local t before after ok
    for t in "${TARGETS[@]}"; do
        if small_only "$t"; then continue; fi
        log "memory ($1): $t with $IDLE_CONNS idle keep-alive connections"
        read -r before after ok < <(python3 "$HERE/idle_conns.py" "${PORT[$t]}" "$IDLE_CONNS" $(pids_of "$t"))
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$t" "${RSS_FRESH[$t]}" "$before" "$after" "$ok" "$IDLE_CONNS" >>"$T/mem.tsv"
        sleep 1
    done
}

# --- memory on nearly fresh processes: one connection for 1 s (code paths loaded), then the idle connections ------
for t in "${TARGETS[@]}"; do wrk -t1 -c1 -d1s "http://127.0.0.1:${PORT[$t]}/" >/dev/null; done
memory_phase fresh

# --- warm-up -------------------------------------------------------------------------------------------------
for t in "${TARGETS[@]}"; do
    log "warming $t"
    "${ON_LOAD[@]}" wrk -t2 -c"$C_SMALL" -d"${WARMUP}s" "http://127.0.0.1:${PORT[$t]}/" >/dev/null
    if ! small_only "$t"; then "${ON_LOAD[@]}" wrk -t2 -c"$C_BIG" -d2s "http://127.0.0.1:${PORT[$t]}/1m" >/dev/null; fi
done

allocated() { # admin port -> the router's dotnet_gc_allocated_bytes_total
    curl -s "http://127.0.0.1:$1/metrics" | awk '$1 == "dotnet_gc_allocated_bytes_total" {printf "%d", $2}'
}

counters() { # admin port -> "allocated-bytes requests-answered" from the router's /metrics
    curl -s "http://127.0.0.1:$1/metrics" |
        awk '$1 == "dotnet_gc_allocated_bytes_total" {a = $2} $1 ~ /^router_requests_total/ {r += $2} END {printf "%d %d\n", a, r}'
}

steady_alloc() { # admin port -> "bytes requests" allocated over the middle half of a wrk run, less one scrape's own share
    local a0 r0 a1 r1 a2 r2
    sleep "$(awk -v d="$DURATION" 'BEGIN {print d / 4}')"
    read -r a0 r0 < <(counters "$1"); read -r a1 r1 < <(counters "$1")
    sleep "$(awk -v d="$DURATION" 'BEGIN {print d / 2}')"
    read -r a2 r2 < <(counters "$1")
    echo "$(( (a2 - a1) - (a1 - a0) )) $((r2 - r1))"
}

# --- measured rounds: every scenario for every target per round, target order reversed on even rounds --------
# For the router targets the managed bytes allocated across the wrk run come from their /metrics. A scrape allocates
# too, so two back-to-back scrapes before the run measure one scrape's own share, which is taken off.
measure() { # round scenario target conns path
    local pids t0 t1 a0 a1 a2 alloc=- steady="- -" sampler= file=$T/wrk/$1-$2-$3.txt
    pids=$(pids_of "$3")
    if [ -n "${ADMIN[$3]:-}" ]; then
        a0=$(allocated "${ADMIN[$3]}"); a1=$(allocated "${ADMIN[$3]}")
        steady_alloc "${ADMIN[$3]}" >"$file.steady" & sampler=$!
    fi
    t0=$(ticks $pids)
    "${ON_LOAD[@]}" wrk -t2 -c"$4" -d"${DURATION}s" --latency "http://127.0.0.1:${PORT[$3]}$5" >"$file" 2>&1
    t1=$(ticks $pids)
    if [ -n "$sampler" ]; then
        a2=$(allocated "${ADMIN[$3]}"); alloc=$(( (a2 - a1) - (a1 - a0) ))
        wait "$sampler" || true; steady=$(cat "$file.steady")
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" $((t1 - t0)) "$file" "$alloc" "${steady// /$'\t'}" >>"$T/results.tsv"
    log "round $1 $2 $3: $(awk '/Requests\/sec/ {print $2}' "$file") rps, $((t1 - t0)) ticks, allocated $alloc B (mid-run: $steady)"
}
BUSY_DURING=()
for round in $(seq 1 "$ROUNDS"); do
    order=("${TARGETS[@]}")
    if [ $((round % 2)) -eq 0 ]; then
        order=(); for ((i = ${#TARGETS[@]} - 1; i >= 0; i--)); do order+=("${TARGETS[$i]}"); done
    fi
    for t in "${order[@]}"; do measure "$round" c64 "$t" "$C_SMALL" /; done
    for t in "${order[@]}"; do measure "$round" c256 "$t" "$C_LARGE" /; done
    for t in "${order[@]}"; do small_only "$t" || measure "$round" big "$t" "$C_BIG" /1m; done
done

ADMIN_CLUSTERS=$(curl -s "http://127.0.0.1:$((BASE_PORT + 11))/admin/clusters" || true)

# --- memory after the load: the heap and pools are grown, so new connections may land in memory already touched -
memory_phase after
BUSY_AFTER_STOP=
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
cleanup
BUSY_AFTER_STOP=$(busy_pct 5)

# --- results file --------------------------------------------------------------------------------------------
mkdir -p "$(dirname "$OUT")"
CLK_TCK=$(getconf CLK_TCK)
{
    echo "# End-to-end proxy comparison, $(date '+%F %H:%M %Z')"
    echo
    echo "Produced by \`make bench-e2e\` (bench/e2e/run.sh) at commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)."
    echo "Compare ratios within this file only: every target ran in the same run, in alternating rounds."
    echo
    echo "## Machine"
    echo
    echo "- nproc: $(nproc); CPU: $(lscpu | sed -n 's/^Model name: *//p' | head -1); kernel: $(uname -r)"
    echo "- memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo); CLK_TCK: $CLK_TCK"
    echo "- background load (the machine is shared; other work was running): whole-machine busy ${BUSY_BEFORE}% over 5 s"
    echo "  before any server started, ${BUSY_AFTER_STOP}% over 5 s after all were stopped; loadavg $LOAD_BEFORE at start, $LOAD_AFTER at end."
    if [ "$PIN" -eq 1 ]; then
        echo "  **Pinned (PIN=1)**: every proxy runs under \`taskset -c $PROXY_CPUS\`, wrk and the upstream under \`taskset -c $LOAD_CPUS\`, so no"
        echo "  proxy shares a core with the load generator. The .NET proxies see one processor (the router then runs one epoll loop);"
        echo "  nginx and HAProxy keep their configured 2 workers / threads. **direct** runs on the load CPUs too."
    else
        echo "  wrk, the upstream and the proxy under test all share the same 2 cores, so the figures are noisy; the per-round columns show the spread."
    fi
    echo
    echo "## Versions"
    echo
    echo "- $(nginx -v 2>&1)"
    echo "- $(haproxy -v 2>&1 | head -1)"
    echo "- $(wrk -v 2>&1 | head -1)"
    echo "- dotnet $(dotnet --version); Yarp.ReverseProxy $(sed -n 's/.*Include="Yarp.ReverseProxy" Version="\([^"]*\)".*/\1/p' Directory.Packages.props)"
    echo "- python $(python3 -c 'import platform; print(platform.python_version())') (idle-connection helper)"
    echo
    echo "## Setup"
    echo
    echo "- upstream: nginx, worker_processes 1, on 127.0.0.1:$BASE_PORT; \`/\` answers 200 with a 12-byte body, \`/1m\` serves a 1 MiB file"
    echo "  (bench/e2e/upstream.nginx.conf.in). **direct** = wrk straight at the upstream (its CPU is the upstream's)."
    echo "- **router**: \`Router.Net --config router.json --listen 127.0.0.1:$((BASE_PORT + 1)) --admin 127.0.0.1:$((BASE_PORT + 11))\`"
    echo "  (Release build, apphost) with \`$ROUTER_ENV\`; workstation non-concurrent GC as the csproj sets."
    echo "  Plain connections run on the router's own epoll loops (one per core; Linux x64)."
    if [ "$SOCKETS" -eq 1 ]; then
        echo "- **router-sockets**: the same on port $((BASE_PORT + 5)) with \`ROUTER_TRANSPORT=sockets\`: the runtime's socket engine"
        echo "  (inline completions) instead of the epoll loops, to show what the transport change is worth."
    fi
    echo "- **nginx** as proxy: worker_processes 2, \`upstream { keepalive 128; }\` (per worker: 256 idle upstream connections in all,"
    echo "  enough for 256 clients; runs before 2026-11-28 run 8 used 64, which made nginx reconnect at 256 clients), \`proxy_http_version 1.1\`,"
    echo "  \`proxy_set_header Connection \"\"\`, proxy_buffering at its default (on), access_log off, keepalive_requests raised"
    echo "  so neither side closes keep-alive connections mid-run (bench/e2e/proxy.nginx.conf.in)."
    echo "- **haproxy**: nbthread 2, \`http-reuse always\`, \`option http-keep-alive\`, run as \`haproxy -db -f haproxy.cfg\` (bench/e2e/haproxy.cfg.in)."
    echo "- **yarp**: bench/YarpHost (Microsoft.NET.Sdk.Web defaults, so Server GC; Kestrel defaults; logging providers cleared),"
    echo "  one route \`{**catch-all}\` and one cluster from LoadFromMemory; no DOTNET_ environment variables."
    if [ "$FLOOR" -eq 1 ]; then
        echo "- **floor**: bench/floor/relay.c (\`cc -O2\`, epoll, 2 threads) on port $((BASE_PORT + 6)): not a proxy but the floor of one here."
        echo "  A TCP relay that parses nothing: each client connection gets its own upstream connection, and every byte read on"
        echo "  one side is sent to the other, so it makes the same 4 TCP segments and 2 recv + 2 send per request as a proxy and"
        echo "  does nothing else. Small-body scenarios only. Its ratios bound what any proxy can reach on this machine."
    fi
    echo "- CPU per request: utime+stime delta (fields 14-15 of /proc/PID/stat, all of the target's processes: nginx master and"
    echo "  workers) across the wrk run, divided by the requests wrk completed. Proxy CPU only: the upstream's CPU is not in it."
    echo "- Allocated (router targets only), from the router's \`dotnet_gc_allocated_bytes_total\` on its /metrics, less what one"
    echo "  scrape allocates itself (two back-to-back scrapes at the start of each window): **whole run** = just before to just after"
    echo "  each wrk run, divided by the requests wrk completed (so it includes setting up and tearing down wrk's connections);"
    echo "  **steady state** = from a quarter to three quarters of the run, divided by the requests the router counted in that"
    echo "  window (\`router_requests_total\`). This is the issue's 0-bytes-per-request measurement, each window well over 100,000 requests."
    echo "- Memory: VmRSS summed over the target's processes, at start and then twice with $IDLE_CONNS keep-alive connections opened"
    echo "  by bench/e2e/idle_conns.py, each having made one \`GET /\` (one at a time) and held open, 2 s after the last answer:"
    echo "  **fresh** = right after start and one connection of load for 1 s (before the warm-up), **after** = after all the load rounds."
    echo "  The fresh figure is the per-connection cost; after load, grown heaps and pools absorb new connections."
    echo
    echo "## Commands"
    echo
    echo "- warm-up per target: \`wrk -t2 -c$C_SMALL -d${WARMUP}s http://127.0.0.1:PORT/\` then \`wrk -t2 -c$C_BIG -d2s http://127.0.0.1:PORT/1m\`"
    echo "- $ROUNDS rounds; in each round, for each target (order reversed on even rounds):"
    echo "  \`wrk -t2 -c$C_SMALL -d${DURATION}s --latency http://127.0.0.1:PORT/\`, \`wrk -t2 -c$C_LARGE -d${DURATION}s --latency http://127.0.0.1:PORT/\`,"
    echo "  \`wrk -t2 -c$C_BIG -d${DURATION}s --latency http://127.0.0.1:PORT/1m\`"
    echo "- memory: \`wrk -t1 -c1 -d1s http://127.0.0.1:PORT/\`, then \`python3 bench/e2e/idle_conns.py PORT $IDLE_CONNS PIDS...\`; again after the rounds"
    echo
    echo "## Results"
    echo
    echo "Means over the rounds (rps, latency); CPU µs/req = total ticks ÷ total requests over the rounds. Ratios are to nginx as proxy in this run."
    echo
    python3 "$HERE/report.py" "$T" "$CLK_TCK"
    echo "Router's /admin/clusters after the load rounds:"
    echo
    echo '```json'
    echo "$ADMIN_CLUSTERS"
    echo '```'
} >"$OUT"
log "wrote $OUT (KEEP_WORK=1 keeps the raw wrk output)"
