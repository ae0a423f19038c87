#!/usr/bin/env bash
# Reminder scheduler benchmark (not a test): a release server on the local PostgreSQL.
#   1. idle with no reminders: CPU of the server and of its PostgreSQL backends over IDLE s;
#   2. idle with PENDING reminders of USERS users waiting (days ahead): the same;
#   3. BURST reminders falling due within one minute: their lateness (firedAt - dueAt, as the
#      server recorded it) p50/p99/max, and CPU per reminder fired.
#   scripts/reminders-bench.sh
#   USERS=1000 PENDING=10000 BURST=200 IDLE=20 scripts/reminders-bench.sh   # smaller
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/pixie-target}
USERS=${USERS:-10000} PENDING=${PENDING:-100000} BURST=${BURST:-1000} IDLE=${IDLE:-60}
ADMIN=${PIXIE_BENCH_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
DB_URL=${ADMIN%/*}/pixie_rbench
PORT=${PORT:-18090}

cargo build --release --bin pixie
bin=$CARGO_TARGET_DIR/release/pixie
psql -q "$ADMIN" -c "DROP DATABASE IF EXISTS pixie_rbench WITH (FORCE)" >/dev/null
data=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -rf "$data"' EXIT
PIXIE__SERVER__BIND=127.0.0.1:$PORT PIXIE__SERVER__DATA_DIR=$data PIXIE__DATABASE__URL=$DB_URL \
  PIXIE__LOG__LEVEL=warn "$bin" serve &
server=$!
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break
  sleep 0.2
done
sql() { psql -qtAX "$DB_URL" -c "$1"; }
hz=$(getconf CLK_TCK)
# CPU ticks (user + system) of the server, and of every PostgreSQL backend on its database.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
pg_ticks() {
  local total=0
  for pid in $(sql "SELECT pid FROM pg_stat_activity WHERE datname = 'pixie_rbench' AND pid <> pg_backend_pid()"); do
    total=$((total + $(ticks "$pid")))
  done
  echo "$total"
}
idle() {
  local s0 p0 s1 p1
  s0=$(ticks "$server"); p0=$(pg_ticks)
  sleep "$IDLE"
  s1=$(ticks "$server"); p1=$(pg_ticks)
  echo "$1: over ${IDLE} s idle, server $(( (s1 - s0) * 1000 / hz )) ms CPU, its PostgreSQL backends $(( (p1 - p0) * 1000 / hz )) ms CPU"
}
echo "server pid $server, $(nproc) CPUs, $hz ticks/s (CPU is counted in 1000/$hz ms steps)"
# Let start-up work settle first (migrations, the first outbox and scheduler passes).
sleep 12
idle "no reminders"

sql "INSERT INTO users (id, created_at) SELECT 'bench_' || i, now() FROM generate_series(1, $USERS) AS i"
sql "INSERT INTO reminders (id, user_id, text, due_at, created_at, updated_at)
     SELECT gen_random_uuid(), 'bench_' || (1 + i % $USERS), 'pending ' || i,
            now() + interval '1 day' + random() * interval '29 days', now(), now()
       FROM generate_series(1, $PENDING) AS i"
sql "ANALYZE reminders"
echo "$(sql "SELECT count(*) FROM reminders WHERE status = 'scheduled'") reminders waiting, of $(sql "SELECT count(DISTINCT user_id) FROM reminders") users"
# The scheduler learns of rows written behind its back at its next poll (reminders.poll_ms).
sleep 11
idle "$PENDING waiting"

# The burst: written 20 s ahead (after the scheduler's next poll), due within one minute.
sql "INSERT INTO reminders (id, user_id, text, due_at, created_at, updated_at)
     SELECT gen_random_uuid(), 'bench_' || (1 + i % $USERS), 'burst ' || i,
            now() + interval '20 seconds' + random() * interval '60 seconds', now(), now()
       FROM generate_series(1, $BURST) AS i"
s0=$(ticks "$server"); p0=$(pg_ticks)
for _ in $(seq 1 600); do
  left=$(sql "SELECT count(*) FROM reminders WHERE text LIKE 'burst %' AND status = 'scheduled'")
  [ "$left" = 0 ] && break
  sleep 0.5
done
s1=$(ticks "$server"); p1=$(pg_ticks)
[ "$left" = 0 ] || { echo "burst: $left never fired"; exit 1; }
sql "SELECT format('burst: %s reminders due within a minute; lateness p50 %s ms, p99 %s ms, max %s ms',
            count(*),
            round((percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM fired_at - due_at)) * 1000)::numeric, 1),
            round((percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM fired_at - due_at)) * 1000)::numeric, 1),
            round((max(extract(epoch FROM fired_at - due_at)) * 1000)::numeric, 1))
       FROM reminders WHERE text LIKE 'burst %'"
echo "burst: over the ~80 s of it, server $(( (s1 - s0) * 1000 / hz )) ms CPU, PostgreSQL backends $(( (p1 - p0) * 1000 / hz )) ms CPU ($(( (s1 - s0 + p1 - p0) * 1000000 / hz / BURST )) µs per reminder, both)"
echo "still waiting: $(sql "SELECT count(*) FROM reminders WHERE status = 'scheduled'") (none of the $PENDING fired early: $(sql "SELECT count(*) FROM reminders WHERE text LIKE 'pending %' AND status <> 'scheduled'") did)"
