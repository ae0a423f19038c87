#!/usr/bin/env bash
# Realtime load benchmark: a release server on the embedded defaults (offline model, edge
# vector store) against the local PostgreSQL, driven by examples/pixie_load.rs.
#   scripts/load.sh            # idle (10,000 sockets, 60 s) then chat (100 clients, 30 s)
#   SOCKETS=2000 HOLD=10 CLIENTS=50 DURATION=10 scripts/load.sh
# and last, with the server stopped, what PostgreSQL alone does on this machine (pgbench).
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

# What PostgreSQL alone can do on this machine, measured with pgbench once the server has
# stopped (so that it has the cores to itself): a one-row durable insert, and the statement
# that stores a chat message (src/db/repos.rs, `AppendMessage`: bump the conversation, insert
# the message; its indexes, foreign keys and outbox trigger), which every turn runs twice.
# The machines this runs on differ (and drift) by more than most changes to the server: this
# puts a run's turns/s next to a ceiling measured on the same machine at the same time.
calibrate() {
  command -v pgbench >/dev/null || { echo "calibration skipped: pgbench not found"; return 0; }
  local dir user=pixie-load-calibration
  dir=$(mktemp -d)
  psql -q "$DB_URL" >/dev/null <<SQL
CREATE TABLE pixie_load_calibration (id UUID PRIMARY KEY, body TEXT NOT NULL);
INSERT INTO users (id) VALUES ('$user');
INSERT INTO conversations (id, user_id, title, created_at, updated_at)
  SELECT ('00000000-0000-7000-8000-' || lpad(n::text, 12, '0'))::uuid, '$user', 'calibration',
         now(), now()
  FROM generate_series(1, 100) AS n;
SQL
  echo "INSERT INTO pixie_load_calibration VALUES (gen_random_uuid(), 'list my tasks');" \
    >"$dir/insert.sql"
  # Message ids time-ordered like the server's UUIDv7 (PostgreSQL 15 has no uuidv7()).
  cat >"$dir/append.sql" <<SQL
\\set c random(1, 100)
WITH bumped AS (UPDATE conversations SET updated_at = now(), last_message_at = now()
    WHERE id = ('00000000-0000-7000-8000-' || lpad(:c::text, 12, '0'))::uuid AND user_id = '$user'
    RETURNING id, user_id)
INSERT INTO messages (id, conversation_id, user_id, role, content, tool_calls,
    client_message_id, created_at, reply_to)
SELECT (lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0')
        || substr(md5(random()::text), 13))::uuid,
    bumped.id, bumped.user_id, 'user', 'list my tasks', '[]'::jsonb, gen_random_uuid()::text,
    now(), NULL
FROM bumped;
SQL
  tps() { pgbench -n -c 8 -j 2 -T 10 -f "$dir/$1" "$DB_URL" 2>/dev/null | awk '/^tps/ {printf "%.0f", $3}'; }
  local insert append
  insert=$(tps insert.sql)
  append=$(tps append.sql)
  rm -rf "$dir"
  echo "== PostgreSQL alone on this machine (pgbench, 8 connections, 10 s each, the server stopped)"
  echo "one-row durable inserts: ${insert:-?}/s; message appends: ${append:-?}/s"
  [ -n "$append" ] && echo "a chat turn stores two messages: with both cores and nothing else to do, PostgreSQL's" \
    "appends alone would cap the chat load at $((append / 2)) turns/s"
  return 0
}

if [ "$SOCKETS" -gt 0 ]; then
  echo "== idle: $SOCKETS sockets for $HOLD s"
  "$load" --url "127.0.0.1:$PORT" idle --sockets "$SOCKETS" --hold "$HOLD" --server-pid "$server"
fi
if [ "$CLIENTS" -gt 0 ]; then
  echo "== chat: $CLIENTS clients for $DURATION s (offline model)"
  "$load" --url "127.0.0.1:$PORT" chat --clients "$CLIENTS" --duration "$DURATION"
  # Turns/s only count if indexing kept up: each turn's two messages are embedded and written
  # to the vector store in the background, and a growing backlog would be work put off.
  echo "indexer backlog when the load stopped: $(psql -Atq "$DB_URL" -c 'SELECT count(*) FROM vector_outbox') jobs"
fi

kill "$server"
wait "$server" 2>/dev/null || true
calibrate || echo "calibration failed"
