-- Messages are stored many to a statement (group commit, src/db/appends.rs): their outbox rows
-- are written by one INSERT ... SELECT per statement from its transition table, instead of one
-- trigger call and one INSERT per row. Same rows as before: the user's messages only, none
-- while a user is being erased. (A trigger with transition tables takes one event each.)
CREATE FUNCTION vector_outbox_enqueue_messages() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('pixie.erasing_user', true) = 'on' THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'DELETE' THEN
        INSERT INTO vector_outbox (user_id, entity_kind, entity_id, op)
        SELECT user_id, 'message', id, 'delete' FROM old_rows WHERE role = 'user';
    ELSE
        INSERT INTO vector_outbox (user_id, entity_kind, entity_id, op)
        SELECT user_id, 'message', id, 'upsert' FROM new_rows WHERE role = 'user';
    END IF;
    RETURN NULL;
END
$$;

DROP TRIGGER messages_vector_outbox ON messages;
CREATE TRIGGER messages_vector_outbox_insert AFTER INSERT ON messages
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION vector_outbox_enqueue_messages();
CREATE TRIGGER messages_vector_outbox_update AFTER UPDATE ON messages
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION vector_outbox_enqueue_messages();
CREATE TRIGGER messages_vector_outbox_delete AFTER DELETE ON messages
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION vector_outbox_enqueue_messages();
