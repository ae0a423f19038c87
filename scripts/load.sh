#!/usr/bin/env bash
# Realtime load benchmark: a release server on the embedded defaults (offline model, edge
# vector store) against the local PostgreSQL, driven by examples/pixie_load.rs.
#   scripts/load.sh            # idle (10,000 sockets, 60 s) then chat (100 clients, 30 s)
#   SOCKETS=2000 HOLD=10 CLIENTS=50 DURATION=10 scripts/load.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/pixie-target}
SOCKETS=${SOCKETS:-10000} HOLD=${HOLD:-60} CLIENTS=${CLIENTS:-100} DURATION=${DURATION:-30}
DB_URL=${PIXIE_LOAD_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/pixie_load?sslmode=disable}
PORT=${PORT:-18080}

# Every socket is a file descriptor, on both sides.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
echo "open files limit: $(ulimit -n)"

cargo build --release --bin pixie --example pixie_load
bin=$CARGO_TARGET_DIR/release/pixie
load=$CARGO_TARGET_DIR/release/examples/pixie_load

psql -q "${DB_URL%/*}/postgres" -c "DROP DATABASE IF EXISTS pixie_load WITH (FORCE)" >/dev/null
data=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -rf "$data"' EXIT
# Four pooled connections per core: on 2 cores, the default 16 lose about a tenth of the
# throughput to PostgreSQL backends and pool threads contending for the CPU.
PIXIE__SERVER__BIND=127.0.0.1:$PORT PIXIE__SERVER__DATA_DIR=$data PIXIE__DATABASE__URL=$DB_URL \
  PIXIE__DATABASE__POOL_SIZE=${POOL_SIZE:-8} PIXIE__LOG__LEVEL=warn \
  PIXIE__REALTIME__CHAT_SENDS_PER_HOUR=0 "$bin" serve &
server=$!
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break
  sleep 0.2
done
echo "server pid $server, $(nproc) CPUs"

# The same work each time: on a shared or virtual machine, how fast the CPU is right now.
cpu_check() {
  command -v python3 >/dev/null || return 0
  python3 -c 'import time
t = time.perf_counter(); s = 0
for i in range(20_000_000): s += i * i
print(f"cpu check: a 20 M-iteration loop took {time.perf_counter() - t:.2f} s")'
}

if [ "$SOCKETS" -gt 0 ]; then
  cpu_check
  echo "== idle: $SOCKETS sockets for $HOLD s"
  "$load" --url "127.0.0.1:$PORT" idle --sockets "$SOCKETS" --hold "$HOLD" --server-pid "$server"
fi
if [ "$CLIENTS" -gt 0 ]; then
  cpu_check
  echo "== chat: $CLIENTS clients for $DURATION s (offline model)"
  "$load" --url "127.0.0.1:$PORT" chat --clients "$CLIENTS" --duration "$DURATION"
  # Turns/s only count if indexing kept up: each turn's two messages are embedded and written
  # to the vector store in the background, and a growing backlog would be work put off.
  echo "indexer backlog when the load stopped: $(psql -Atq "$DB_URL" -c 'SELECT count(*) FROM vector_outbox') jobs"
fi
