-- The lexical leg of recall: PostgreSQL full text over the documents the vector index holds.
-- It reads committed rows, so what was just written is found at once, whatever the indexer's
-- backlog. (user_id, search) indexes need btree_gin, a trusted extension (PostgreSQL 13+).
CREATE EXTENSION IF NOT EXISTS btree_gin;

ALTER TABLE memories ADD COLUMN search tsvector
    GENERATED ALWAYS AS (to_tsvector('english'::regconfig, content)) STORED;
ALTER TABLE tasks ADD COLUMN search tsvector
    GENERATED ALWAYS AS (
        setweight(to_tsvector('english'::regconfig, title), 'A')
        || setweight(to_tsvector('english'::regconfig,
               coalesce(description, '') || ' ' || coalesce(project, '')), 'B')
    ) STORED;
ALTER TABLE events ADD COLUMN search tsvector
    GENERATED ALWAYS AS (
        setweight(to_tsvector('english'::regconfig, title), 'A')
        || setweight(to_tsvector('english'::regconfig,
               coalesce(description, '') || ' ' || coalesce(location, '')), 'B')
    ) STORED;
-- The assistant's replies are not facts about the user: only the user's own messages.
ALTER TABLE messages ADD COLUMN search tsvector
    GENERATED ALWAYS AS (
        CASE WHEN role = 'user' THEN to_tsvector('english'::regconfig, content) END
    ) STORED;

-- New entries wait in a GIN index's pending list, which every search reads through: a small
-- list (256 kB, against 4 MB by default) keeps searches fast right after a burst of writes.
CREATE INDEX memories_search_idx ON memories USING gin (user_id, search)
    WITH (gin_pending_list_limit = 256);
CREATE INDEX tasks_search_idx ON tasks USING gin (user_id, search)
    WITH (gin_pending_list_limit = 256);
CREATE INDEX events_search_idx ON events USING gin (user_id, search)
    WITH (gin_pending_list_limit = 256);
CREATE INDEX messages_search_idx ON messages USING gin (user_id, search)
    WITH (gin_pending_list_limit = 256) WHERE search IS NOT NULL;

-- Nor are the assistant's replies indexed by meaning: no outbox work for them.
CREATE OR REPLACE FUNCTION vector_outbox_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Erasing a user queues one row for all their vectors instead of one per entity.
    IF current_setting('pixie.erasing_user', true) = 'on' THEN
        RETURN NULL;
    END IF;
    -- Nested: an AND may evaluate both sides, and only messages have a role.
    IF TG_ARGV[0] = 'message' THEN
        IF (CASE WHEN TG_OP = 'DELETE' THEN OLD.role ELSE NEW.role END) = 'assistant' THEN
            RETURN NULL;
        END IF;
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
