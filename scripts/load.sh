#!/usr/bin/env bash
# Realtime load benchmark: a release server on the embedded defaults (offline model, edge
# vector store) against the local PostgreSQL, driven by examples/pixie_load.rs.
#   scripts/load.sh            # idle (10,000 sockets, 60 s) then chat (100 clients, 60 s)
#   SOCKETS=0 CLIENTS=50 DURATION=10 CONVERSATIONS=0 scripts/load.sh
# then (CONVERSATIONS, REALISTIC_DURATION, THINK_MS) conversations with a streaming mock model.
#   PIXIE_BIN=/path/to/other/pixie scripts/load.sh   # another build of the server, same load
# and last, with the server stopped, what PostgreSQL alone does on this machine (pgbench): the
# chat result is judged as a ratio to it, since this machine's speed drifts from day to day.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/pixie-target}
SOCKETS=${SOCKETS:-10000} HOLD=${HOLD:-60} CLIENTS=${CLIENTS:-100} DURATION=${DURATION:-60}
CONVERSATIONS=${CONVERSATIONS:-2000} REALISTIC_DURATION=${REALISTIC_DURATION:-60}
THINK_MS=${THINK_MS:-10000} MOCK_PORT=${MOCK_PORT:-18090}
DB_URL=${PIXIE_LOAD_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/pixie_load?sslmode=disable}
PORT=${PORT:-18080}

# Every socket is a file descriptor, on both sides.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
echo "open files limit: $(ulimit -n)"

# LOAD_TOOL=path: a load tool already built (with PIXIE_BIN, nothing is built).
if [ -z "${PIXIE_BIN:-}" ] || [ -z "${LOAD_TOOL:-}" ]; then
  cargo build --release --bin pixie --example pixie_load
fi
bin=${PIXIE_BIN:-$CARGO_TARGET_DIR/release/pixie}
# Its own config.toml when it is another build (PIXIE_CONFIG), else the defaults.
export PIXIE_CONFIG=${PIXIE_CONFIG:-config.toml}
load=${LOAD_TOOL:-$CARGO_TARGET_DIR/release/examples/pixie_load}

data=$(mktemp -d)
server=""
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -rf "$data"' EXIT
# A server on a new database and data directory, with the extra settings given as VAR=value.
start_server() {
  psql -q "${DB_URL%/*}/postgres" -c "DROP DATABASE IF EXISTS pixie_load WITH (FORCE)" >/dev/null
  rm -rf "$data/server" && mkdir -p "$data/server"
  # Four pooled connections per core: on 2 cores, the default 16 lose about a tenth of the
  # throughput to PostgreSQL backends and pool threads contending for the CPU.
  env PIXIE__SERVER__BIND=127.0.0.1:$PORT PIXIE__SERVER__DATA_DIR=$data/server \
    PIXIE__DATABASE__URL=$DB_URL PIXIE__DATABASE__POOL_SIZE=${POOL_SIZE:-8} \
    PIXIE__LOG__LEVEL=warn PIXIE__REALTIME__CHAT_SENDS_PER_HOUR=0 "$@" "$bin" serve &
  server=$!
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break
    sleep 0.2
  done
}
stop_server() {
  kill "$server"
  wait "$server" 2>/dev/null || true
  server=""
}
start_server ${EXTRA_ENV:-}
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
  # Every statement a chat turn makes PostgreSQL run, as pg_stat_statements shows them
  # (PG_STATS=1), one message at a time: the user's message, the context (history, open
  # tasks, the week's one-off events and series), list_tasks, the answer, and the indexer's
  # taking of the user message's outbox row and reading its message (in batches, in the server). What PostgreSQL alone does with
  # this, with no server in the way, is the most a turn could cost it.
  local conv="('00000000-0000-7000-8000-' || lpad(:c::text, 12, '0'))::uuid"
  sed -e 's/${role}/user/' "$dir/append.sql" >"$dir/turn.sql"
  cat >>"$dir/turn.sql" <<SQL
SELECT * FROM messages WHERE conversation_id = $conv
  AND EXISTS (SELECT 1 FROM conversations WHERE id = $conv AND user_id = '$user')
  AND (created_at, id) < (now(), 'ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid)
  ORDER BY created_at DESC, id DESC LIMIT 20;
SELECT * FROM tasks WHERE user_id = '$user' AND status IN ('pending', 'in_progress')
  ORDER BY created_at DESC, id DESC LIMIT 21;
SELECT * FROM events WHERE user_id = '$user' AND recurrence IS NULL AND start_at < now() + interval '7 days'
  AND end_at > now() ORDER BY start_at, id LIMIT 21;
SELECT * FROM events WHERE user_id = '$user' AND recurrence IS NOT NULL AND start_at < now() + interval '7 days'
  ORDER BY start_at, id LIMIT 50;
SELECT * FROM tasks WHERE user_id = '$user' ORDER BY created_at DESC, id DESC LIMIT 51;
SQL
  sed -e "s/'user', 'list my tasks'/'assistant', 'You have no tasks.'/" \
    -e 's/gen_random_uuid()::text/NULL/' "$dir/append.sql" | sed -n '2,$p' >>"$dir/turn.sql"
  cat >>"$dir/turn.sql" <<SQL
WITH job AS (DELETE FROM vector_outbox WHERE id = (SELECT id FROM vector_outbox
    WHERE next_attempt_at <= now() ORDER BY next_attempt_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)
    RETURNING entity_id)
  SELECT messages.* FROM messages JOIN job ON messages.id = job.entity_id;
SQL
  tps() { pgbench -n -c 8 -j 2 -T 10 -f "$dir/$1" "$DB_URL" 2>/dev/null | awk '/^tps/ {printf "%.0f", $3}'; }
  local append pg_pids pg0
  insert=$(tps insert.sql)
  append=$(tps append.sql)
  pg_pids=$(pgrep -x postgres | tr '\n' ' ')
  pg0=$(cpu_ticks $pg_pids)
  turn=$(tps turn.sql)
  turn_pg_ms=$(awk -v t="${turn:-0}" -v d="$(($(cpu_ticks $(pgrep -x postgres)) - pg0))" \
    -v hz="$(getconf CLK_TCK)" 'BEGIN { if (t > 0) printf "%.2f", d * 1000 / hz / (t * 10) }')
  rm -rf "$dir"
  echo "== PostgreSQL alone on this machine (pgbench, 8 connections, 10 s each, the server stopped)"
  echo "one-row durable inserts: ${insert:-?}/s; message appends: ${append:-?}/s"
  [ -n "$append" ] && echo "a chat turn stores two messages: with both cores and nothing else to do, PostgreSQL's" \
    "appends alone would cap the chat load at $((append / 2)) turns/s"
  echo "a turn's statements, one transaction each, no server: ${turn:-?} turns/s," \
    "${turn_pg_ms:-?} ms of PostgreSQL CPU per turn"
  return 0
}

if [ "$SOCKETS" -gt 0 ]; then
  echo "== idle: $SOCKETS sockets for $HOLD s"
  "$load" --url "127.0.0.1:$PORT" idle --sockets "$SOCKETS" --hold "$HOLD" --server-pid "$server"
  # The floor under that figure: the same count of plain WebSockets on a bare actix-web +
  # actix-ws server, and on a bare tokio-tungstenite one with a 4 KiB read buffer.
  "$load" floor --server actix --sockets "$SOCKETS"
  "$load" floor --server tungstenite --read-buffer 4096 --sockets "$SOCKETS"
fi
# CPU time (user + system, clock ticks) of the given processes, their reaped children included.
cpu_ticks() {
  for p in "$@"; do cat "/proc/$p/stat" 2>/dev/null; done | sed 's/^.*) //' |
    awk '{ s += $12 + $13 + $14 + $15 } END { print s + 0 }'
}
backlog() { psql -Atq "$DB_URL" -c 'SELECT count(*) FROM vector_outbox'; }
turns=""
if [ "$CLIENTS" -gt 0 ]; then
  echo "== chat: $CLIENTS clients for $DURATION s (offline model)"
  # PG_STATS=1: where PostgreSQL's time goes, per statement (needs pg_stat_statements in
  # shared_preload_libraries).
  [ -n "${PG_STATS:-}" ] && psql -q "$DB_URL" -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" \
    -c "SELECT pg_stat_statements_reset()" >/dev/null
  pg_pids=$(pgrep -x postgres | tr '\n' ' ')
  server0=$(cpu_ticks "$server") pg0=$(cpu_ticks $pg_pids)
  # The backlog every 10 s: it must stay bounded while the load runs.
  (while sleep 10; do echo "  indexer backlog: $(backlog) jobs"; done) &
  sampler=$!
  started=$(date +%s.%N)
  "$load" --url "127.0.0.1:$PORT" chat --clients "$CLIENTS" --duration "$DURATION" | tee "$data/chat.out"
  kill "$sampler" 2>/dev/null || true
  # Turns count with their indexing paid for: each turn's user message is embedded and
  # written to the vector store in the background, and what is left when the load stops is
  # drained (and timed, and its CPU counted) before the turns are divided by anything.
  left=$(backlog)
  for _ in $(seq 1 600); do [ "$(backlog)" -eq 0 ] && break; sleep 0.2; done
  ended=$(date +%s.%N)
  # Backends started meanwhile count from zero; those that ended are in their parent's total.
  server1=$(cpu_ticks "$server") pg1=$(cpu_ticks $(pgrep -x postgres))
  read -r turns load_ms < <(sed -n 's/^result turns=\([0-9]*\) seconds=[0-9.]* load_cpu_ms=\([0-9]*\)$/\1 \2/p' "$data/chat.out")
  tick_ms=$(awk -v hz="$(getconf CLK_TCK)" 'BEGIN { print 1000 / hz }')
  awk -v t="$turns" -v s0="$server0" -v s1="$server1" -v p0="$pg0" -v p1="$pg1" -v l="$load_ms" \
    -v ms="$tick_ms" -v from="$started" -v to="$ended" -v left="$left" 'BEGIN {
      wall = to - from
      printf "backlog when the load stopped: %d jobs; drained %.1f s later\n", left, wall - '"$DURATION"'
      printf "turns/s with indexing paid for: %.0f (%d turns in %.1f s)\n", t / wall, t, wall
      printf "CPU per turn: server %.2f ms, PostgreSQL %.2f ms, load tool %.2f ms\n",
        (s1 - s0) * ms / t, (p1 - p0) * ms / t, l / t
    }'
  [ -n "${PG_STATS:-}" ] && psql "$DB_URL" -c "SELECT round((total_exec_time + total_plan_time)::numeric * 1000 / $turns) AS us_per_turn,
      round(calls::numeric / $turns, 2) AS calls_per_turn, round(rows::numeric / greatest(calls, 1), 1) AS rows,
      left(regexp_replace(query, '\s+', ' ', 'g'), 110) AS query
    FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
    ORDER BY total_exec_time + total_plan_time DESC LIMIT 20"
  paid=$(awk -v t="$turns" -v from="$started" -v to="$ended" 'BEGIN { printf "%.1f", t / (to - from) }')
fi

stop_server

if [ "$CONVERSATIONS" -gt 0 ]; then
  echo "== realistic: $CONVERSATIONS conversations for $REALISTIC_DURATION s with a streaming mock model"
  start_server PIXIE__AI__PROVIDER=openai PIXIE__AI__MODEL=mock \
    PIXIE__AI__BASE_URL=http://127.0.0.1:$MOCK_PORT/v1 ${EXTRA_ENV:-}
  pg0=$(cpu_ticks $(pgrep -x postgres))
  "$load" --url "127.0.0.1:$PORT" realistic --mock-port "$MOCK_PORT" \
    --conversations "$CONVERSATIONS" --duration "$REALISTIC_DURATION" --think-ms "$THINK_MS" \
    --server-pid "$server" | tee "$data/realistic.out"
  # The recall of every model turn (both legs) and its writes, in PostgreSQL.
  pg1=$(cpu_ticks $(pgrep -x postgres))
  awk -v d="$((pg1 - pg0))" -v hz="$(getconf CLK_TCK)" \
    -v t="$(sed -n 's/.*: \([0-9]*\) turns (.*/\1/p' "$data/realistic.out")" \
    'BEGIN { if (t > 0) printf "CPU per turn: PostgreSQL %.2f ms (its sign-ins included)\n", d * 1000 / hz / t }'
  stop_server
fi

insert="" turn=""
calibrate || echo "calibration failed"
if [ -n "$turns" ] && [ -n "$insert" ]; then
  echo "== result"
  awk -v p="$paid" -v i="$insert" -v t="${turn:-0}" 'BEGIN {
    printf "chat %.0f turns/s / calibration %d inserts/s = ratio %.3f (target 0.25)\n", p, i, p / i
    if (t > 0) printf "chat %.0f turns/s / a turn'"'"'s statements in PostgreSQL alone %d/s = %.2f\n", p, t, p / t }'
fi
