-- Reminders: the assistant speaks first. A reminder stands alone, or belongs to a task, or to
-- one occurrence of an event (an alert, `alert_minutes` before it starts). The scheduler
-- claims due rows with FOR UPDATE SKIP LOCKED, so any number of instances share the work and
-- a row fires once: its status leaves 'scheduled' in the transaction that claimed it.
CREATE TABLE reminders (
    id              UUID PRIMARY KEY,
    user_id         TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    text            TEXT NOT NULL CHECK (char_length(text) BETWEEN 1 AND 500),
    due_at          TIMESTAMPTZ NOT NULL,
    -- A deleted task or event first cancels its pending reminders (in the deleting
    -- transaction); the link then goes.
    task_id         UUID REFERENCES tasks (id) ON DELETE SET NULL,
    event_id        UUID REFERENCES events (id) ON DELETE SET NULL,
    occurrence_at   TIMESTAMPTZ,
    -- Set on an event's alert: this many minutes before `occurrence_at`.
    alert_minutes   INTEGER CHECK (alert_minutes BETWEEN 0 AND 40320),
    -- The conversation the reminder was asked for in: it is told there when it fires.
    conversation_id UUID REFERENCES conversations (id) ON DELETE SET NULL,
    status          TEXT NOT NULL DEFAULT 'scheduled'
                    CHECK (status IN ('scheduled', 'fired', 'dismissed', 'cancelled')),
    fired_at        TIMESTAMPTZ,
    -- Found too long after its time (the server was down): marked fired, not delivered.
    fired_late      BOOLEAN NOT NULL DEFAULT false,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);
-- The scheduler's queue: only what is still to fire, by time.
CREATE INDEX reminders_due_idx ON reminders (due_at) WHERE status = 'scheduled';
-- The user's listing, by time; and the count of what they have still to fire (bounded).
CREATE INDEX reminders_user_due_idx ON reminders (user_id, due_at, id);
CREATE INDEX reminders_user_scheduled_idx ON reminders (user_id) WHERE status = 'scheduled';
CREATE INDEX reminders_task_idx ON reminders (task_id) WHERE task_id IS NOT NULL;
CREATE INDEX reminders_event_idx ON reminders (event_id) WHERE event_id IS NOT NULL;
CREATE INDEX reminders_conversation_idx ON reminders (conversation_id)
    WHERE conversation_id IS NOT NULL;

-- Minutes before each occurrence's start at which an event reminds (at most 5).
ALTER TABLE events ADD COLUMN alerts INTEGER[] NOT NULL DEFAULT '{}'
    CHECK (cardinality(alerts) <= 5 AND 0 <= ALL (alerts) AND 40320 >= ALL (alerts));
