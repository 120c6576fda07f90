#!/usr/bin/env bash
# TLS termination benchmark: Router vs nginx vs HAProxy, same certificate, same upstream, same client.
#
#   bench/e2e/tls.sh [duration-seconds] [output.md]
#
# For each proxy it measures
#   - keep-alive rps: wrk over HTTPS, connections kept alive (one handshake per connection, then requests);
#   - new connections/s: wrk with "Connection: close", so every request is a new TCP + TLS handshake
#     (wrk's OpenSSL client does not resume sessions, so these are full handshakes);
#   - s_time: `openssl s_time -new` (one client, full handshakes back to back) as a cross-check;
#   - resumption: `openssl s_client -reconnect` (TLS 1.2 session ids/tickets) - counts "Reused" of 5 reconnects.
# The certificate is ECDSA P-256 (what most sites serve today). Upstream is an nginx returning a fixed 13-byte body.
# The machine is shared: run it when nothing else is busy, or read the numbers as relative.
set -euo pipefail

DURATION="${1:-10}"
OUT="${2:-}"
CONNS="${CONNS:-50}"
THREADS="${THREADS:-2}"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
WORK="$(mktemp -d /tmp/router-tls-bench.XXXXXX)"
UPSTREAM_PORT=18180
ROUTER_PORT=18443
NGINX_PORT=18444
HAPROXY_PORT=18445
PIDS=()

cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  if [ -f "$WORK/upstream.pid" ]; then kill "$(cat "$WORK/upstream.pid")" 2>/dev/null || true; fi
  if [ -f "$WORK/nginx-tls.pid" ]; then kill "$(cat "$WORK/nginx-tls.pid")" 2>/dev/null || true; fi
  sleep 0.5
  rm -rf "$WORK"
}
trap cleanup EXIT

need() { command -v "$1" >/dev/null 2>&1; }
if ! need wrk || ! need nginx || ! need haproxy || ! need openssl; then
  apt-get install -y wrk nginx haproxy openssl >/dev/null
fi

# One certificate for everyone.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj "/CN=bench.test" -addext "subjectAltName=DNS:bench.test,IP:127.0.0.1" \
  -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
cat "$WORK/cert.pem" "$WORK/key.pem" > "$WORK/haproxy.pem"

# Upstream: nginx answering a fixed body, keep-alive.
cat > "$WORK/upstream.conf" <<EOF
worker_processes 1;
pid $WORK/upstream.pid;
error_log $WORK/upstream-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$UPSTREAM_PORT; location / { return 200 "hello, world\n"; } }
}
EOF
nginx -c "$WORK/upstream.conf" -p "$WORK"

# nginx terminating TLS.
cat > "$WORK/nginx-tls.conf" <<EOF
worker_processes auto;
pid $WORK/nginx-tls.pid;
error_log $WORK/nginx-tls-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream up { server 127.0.0.1:$UPSTREAM_PORT; keepalive 256; }
  server {
    listen 127.0.0.1:$NGINX_PORT ssl;
    ssl_certificate $WORK/cert.pem;
    ssl_certificate_key $WORK/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:SSL:10m;
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-Proto https;
    }
  }
}
EOF
nginx -c "$WORK/nginx-tls.conf" -p "$WORK"

# HAProxy terminating TLS.
cat > "$WORK/haproxy.cfg" <<EOF
global
  maxconn 4096
  nbthread $(nproc)
  ssl-default-bind-options ssl-min-ver TLSv1.2
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
frontend fe
  bind 127.0.0.1:$HAPROXY_PORT ssl crt $WORK/haproxy.pem alpn http/1.1
  http-request set-header X-Forwarded-Proto https
  default_backend be
backend be
  http-reuse always
  server s1 127.0.0.1:$UPSTREAM_PORT
EOF
haproxy -f "$WORK/haproxy.cfg" -q &
PIDS+=($!)

# Router terminating TLS (Release build).
dotnet build -c Release "$ROOT/Router.Net" -v q -nologo >/dev/null
ROUTER_BIN="$ROOT/Router.Net/bin/Release/net10.0/Router.Net"
cat > "$WORK/router.json" <<EOF
{ "routes": [ { "id": "all", "match": { "pathPrefix": "/" }, "cluster": "up" } ],
  "clusters": [ { "id": "up", "destinations": [ { "address": "127.0.0.1:$UPSTREAM_PORT" } ] } ] }
EOF
"$ROUTER_BIN" --config "$WORK/router.json" --listen-tls "127.0.0.1:$ROUTER_PORT" \
  --cert "$WORK/cert.pem" --key "$WORK/key.pem" --admin 127.0.0.1:18901 > "$WORK/router.log" 2>&1 &
PIDS+=($!)

for port in $ROUTER_PORT $NGINX_PORT $HAPROXY_PORT; do
  for _ in $(seq 1 100); do
    curl -skf "https://127.0.0.1:$port/" >/dev/null 2>&1 && break
    sleep 0.1
  done
done

rps() { awk '/Requests\/sec/ {print $2}'; }
row() {
  local name=$1 port=$2 url="https://127.0.0.1:$2/"
  wrk -t"$THREADS" -c"$CONNS" -d2s "$url" >/dev/null 2>&1 || true   # warm-up (JIT, pools)
  local ka nc st reused
  ka=$(wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" "$url" | rps)
  nc=$(wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" -H "Connection: close" "$url" | rps)
  st=$(openssl s_time -connect "127.0.0.1:$port" -new -time "$DURATION" 2>/dev/null | awk '/real seconds/ {printf "%.0f", $1/$4; exit}')
  reused=$(echo | openssl s_client -connect "127.0.0.1:$port" -tls1_2 -reconnect 2>/dev/null | grep -c '^Reused' || true)
  echo "| $name | $ka | $nc | $st | $reused/5 |"
}

{
  echo "# TLS termination: Router vs nginx vs HAProxy"
  echo
  echo "- Date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "- Machine: nproc=$(nproc), $(lscpu | grep 'Model name' | sed 's/  */ /g')"
  echo "- Shared machine (other agents building and testing at the same time): numbers are noisy; compare rows, not runs."
  echo "- Command: \`bench/e2e/tls.sh $DURATION\` (wrk -t$THREADS -c$CONNS -d${DURATION}s; certificate ECDSA P-256, self-signed; upstream nginx returning 13 bytes)"
  echo "- Versions: $(nginx -v 2>&1 | sed 's/.*: //'), $(haproxy -v | head -1 | awk '{print $1, $2, $3}'), $(openssl version | awk '{print $1, $2}'), $(wrk -v 2>&1 | head -1 | awk '{print $1, $2}'), .NET $(dotnet --version)"
  echo "- Client, proxies and upstream share the same $(nproc) cores: the proxy gets a fraction of the machine."
  echo
  echo "| proxy | keep-alive req/s | new connections/s (Connection: close) | s_time -new conn/s (1 client) | TLS 1.2 resumption (s_client -reconnect) |"
  echo "|---|---:|---:|---:|---:|"
  row Router $ROUTER_PORT
  row nginx $NGINX_PORT
  row HAProxy $HAPROXY_PORT
  echo
  echo "Negotiated with each (openssl s_client, default client):"
  echo
  for p in $ROUTER_PORT $NGINX_PORT $HAPROXY_PORT; do
    echo "- port $p: $(echo | openssl s_client -connect 127.0.0.1:$p -alpn http/1.1 2>/dev/null | grep -E '^(New,|ALPN protocol)' | tr '\n' ' ')"
  done
} | tee "${OUT:-/dev/null}"
