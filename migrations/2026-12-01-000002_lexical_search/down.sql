CREATE OR REPLACE FUNCTION vector_outbox_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$
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

DROP INDEX messages_search_idx;
DROP INDEX events_search_idx;
DROP INDEX tasks_search_idx;
DROP INDEX memories_search_idx;
ALTER TABLE messages DROP COLUMN search;
ALTER TABLE events DROP COLUMN search;
ALTER TABLE tasks DROP COLUMN search;
ALTER TABLE memories DROP COLUMN search;
DROP EXTENSION IF EXISTS btree_gin;
