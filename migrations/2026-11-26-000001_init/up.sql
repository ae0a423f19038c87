-- Users are identified by their identity provider's subject (Clerk `sub`, or the dev id).
CREATE TABLE users (
    id          TEXT PRIMARY KEY CHECK (char_length(id) BETWEEN 1 AND 255),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE tasks (
    id           UUID PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title        TEXT NOT NULL CHECK (char_length(title) BETWEEN 1 AND 500),
    description  TEXT CHECK (char_length(description) <= 10000),
    project      TEXT CHECK (char_length(project) <= 100),
    status       TEXT NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'in_progress', 'completed', 'cancelled')),
    priority     TEXT CHECK (priority IN ('low', 'medium', 'high', 'urgent')),
    due_at       TIMESTAMPTZ,
    completed_at TIMESTAMPTZ,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);
-- Listing is newest first, optionally filtered by status, project or due date.
CREATE INDEX tasks_user_created_idx ON tasks (user_id, created_at DESC, id DESC);
CREATE INDEX tasks_user_status_created_idx ON tasks (user_id, status, created_at DESC, id DESC);
CREATE INDEX tasks_user_project_created_idx ON tasks (user_id, project, created_at DESC, id DESC)
    WHERE project IS NOT NULL;
CREATE INDEX tasks_user_due_idx ON tasks (user_id, due_at) WHERE due_at IS NOT NULL;

CREATE TABLE events (
    id           UUID PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title        TEXT NOT NULL CHECK (char_length(title) BETWEEN 1 AND 500),
    description  TEXT CHECK (char_length(description) <= 10000),
    location     TEXT CHECK (char_length(location) <= 500),
    start_at     TIMESTAMPTZ NOT NULL,
    end_at       TIMESTAMPTZ NOT NULL,
    is_all_day   BOOLEAN NOT NULL DEFAULT false,
    -- An RFC 5545 RRULE as the user wrote it (without DTSTART: start_at is the series start).
    recurrence   TEXT CHECK (char_length(recurrence) <= 1000),
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    CHECK (end_at > start_at)
);
-- Listing by start time (a range listing reads single events here), and a user's recurring series.
CREATE INDEX events_user_start_idx ON events (user_id, start_at, id);
CREATE INDEX events_user_recurring_idx ON events (user_id, start_at) WHERE recurrence IS NOT NULL;

CREATE TABLE memories (
    id          UUID PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    content     TEXT NOT NULL CHECK (char_length(content) BETWEEN 1 AND 4000),
    kind        TEXT NOT NULL DEFAULT 'note'
                CHECK (kind IN ('note', 'task', 'event', 'conversation')),
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX memories_user_created_idx ON memories (user_id, created_at DESC, id DESC);

CREATE TABLE conversations (
    id              UUID PRIMARY KEY,
    user_id         TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title           TEXT CHECK (char_length(title) <= 500),
    created_at      TIMESTAMPTZ NOT NULL,
    -- Bumped by every new message: listing is by most recent activity.
    updated_at      TIMESTAMPTZ NOT NULL,
    last_message_at TIMESTAMPTZ
);
CREATE INDEX conversations_user_updated_idx ON conversations (user_id, updated_at DESC, id DESC);

CREATE TABLE messages (
    id                UUID PRIMARY KEY,
    conversation_id   UUID NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    user_id           TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role              TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    content           TEXT NOT NULL,
    -- The tool calls the assistant made while writing this message, as the API shows them.
    tool_calls        JSONB NOT NULL DEFAULT '[]'::jsonb,
    client_message_id TEXT CHECK (char_length(client_message_id) BETWEEN 1 AND 64),
    created_at        TIMESTAMPTZ NOT NULL
);
CREATE INDEX messages_conversation_created_idx ON messages (conversation_id, created_at DESC, id DESC);
-- Idempotency of chat turns: one message per (user, clientMessageId).
CREATE UNIQUE INDEX messages_user_client_id_key ON messages (user_id, client_message_id)
    WHERE client_message_id IS NOT NULL;

-- Transactional outbox for the vector index: every write of an indexed entity adds a row in the
-- same transaction (the triggers below, so that no write path can forget it); a background
-- worker applies the rows to the vector store. No foreign keys, so that deletions (including a
-- whole user's) leave their "delete" rows behind for the worker.
CREATE TABLE vector_outbox (
    id              BIGSERIAL PRIMARY KEY,
    user_id         TEXT NOT NULL,
    entity_kind     TEXT NOT NULL CHECK (entity_kind IN ('task', 'event', 'memory', 'message', 'user')),
    entity_id       UUID,
    op              TEXT NOT NULL CHECK (op IN ('upsert', 'delete')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_error      TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((entity_kind = 'user') = (entity_id IS NULL))
);
CREATE INDEX vector_outbox_due_idx ON vector_outbox (next_attempt_at, id);

CREATE FUNCTION vector_outbox_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Erasing a user queues one row for all their vectors instead of one per entity.
    IF current_setting('pixie.erasing_user', true) = 'on' THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'DELETE' THEN
        INSERT INTO vector_outbox (user_id, entity_kind, entity_id, op)
        VALUES (OLD.user_id, TG_ARGV[0], OLD.id, 'delete');
    ELSE
        INSERT INTO vector_outbox (user_id, entity_kind, entity_id, op)
        VALUES (NEW.user_id, TG_ARGV[0], NEW.id, 'upsert');
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER tasks_vector_outbox AFTER INSERT OR UPDATE OR DELETE ON tasks
    FOR EACH ROW EXECUTE FUNCTION vector_outbox_enqueue('task');
CREATE TRIGGER events_vector_outbox AFTER INSERT OR UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION vector_outbox_enqueue('event');
CREATE TRIGGER memories_vector_outbox AFTER INSERT OR UPDATE OR DELETE ON memories
    FOR EACH ROW EXECUTE FUNCTION vector_outbox_enqueue('memory');
CREATE TRIGGER messages_vector_outbox AFTER INSERT OR UPDATE OR DELETE ON messages
    FOR EACH ROW EXECUTE FUNCTION vector_outbox_enqueue('message');
