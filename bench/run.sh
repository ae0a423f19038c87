#!/usr/bin/env bash
# Benchmarks of the REST foundation (numbers are machine-dependent; quote them with the machine).
#   1. cold start (database created + migrated) and warm restart, to the first /readyz 200;
#   2. GET /v1/tasks (50 tasks) and POST /v1/tasks at 50 concurrent connections, with wrk.
# Usage: bench/run.sh   (needs PostgreSQL at $BENCH_ADMIN_URL, psql, python3, wrk)
set -euo pipefail
cd "$(dirname "$0")/.."
ADMIN_URL=${BENCH_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
DURATION=${BENCH_DURATION:-15s}
command -v wrk >/dev/null || { echo "bench: wrk is missing (apt-get install wrk)" >&2; exit 1; }
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/pixie-target}
cargo build --release --quiet
BIN=$CARGO_TARGET_DIR/release/pixie

echo "== start-up"
python3 bench/startup.py "$BIN" "$ADMIN_URL" "${BENCH_STARTS:-5}"

DB=pixie_bench_http
DB_URL="${ADMIN_URL%/*}/$DB"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null
PIXIE__DATABASE__URL=$DB_URL PIXIE__SERVER__BIND=127.0.0.1:$PORT PIXIE__LOG__LEVEL=warn \
  "$BIN" serve >/tmp/pixie-bench.log 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null' EXIT
for _ in $(seq 1 200); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.05; done

for i in $(seq 1 50); do
  curl -sf -X POST "http://127.0.0.1:$PORT/v1/tasks" -H 'Authorization: Bearer dev:reader' \
    -H 'Content-Type: application/json' -d "{\"title\": \"Task $i\", \"project\": \"bench\"}" >/dev/null
done
COUNT=$(curl -sf "http://127.0.0.1:$PORT/v1/tasks" -H 'Authorization: Bearer dev:reader' | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["items"]))')
echo "== GET /v1/tasks ($COUNT tasks per page), 50 connections, $DURATION"
wrk -t2 -c50 -d"$DURATION" --latency -H 'Authorization: Bearer dev:reader' "http://127.0.0.1:$PORT/v1/tasks" \
  | grep -E 'Requests/sec|Latency|50%|99%|Non-2xx|Socket errors'
echo "== POST /v1/tasks, 50 connections, $DURATION"
wrk -t2 -c50 -d"$DURATION" --latency -s bench/post_task.lua "http://127.0.0.1:$PORT/v1/tasks" \
  | grep -E 'Requests/sec|Latency|50%|99%|Non-2xx|Socket errors'
echo "== server RSS after the runs: $(ps -o rss= -p $SERVER | awk '{printf "%.1f MB", $1/1024}')"
