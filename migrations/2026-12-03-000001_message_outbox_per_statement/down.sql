DROP TRIGGER messages_vector_outbox_delete ON messages;
DROP TRIGGER messages_vector_outbox_update ON messages;
DROP TRIGGER messages_vector_outbox_insert ON messages;
DROP FUNCTION vector_outbox_enqueue_messages();
CREATE TRIGGER messages_vector_outbox AFTER INSERT OR UPDATE OR DELETE ON messages
    FOR EACH ROW EXECUTE FUNCTION vector_outbox_enqueue('message');
