DROP INDEX messages_search_idx;
DROP INDEX events_search_idx;
DROP INDEX tasks_search_idx;
DROP INDEX memories_search_idx;
CREATE INDEX memories_search_idx ON memories USING gin (user_id, search)
    WITH (gin_pending_list_limit = 256);
CREATE INDEX tasks_search_idx ON tasks USING gin (user_id, search)
    WITH (gin_pending_list_limit = 256);
CREATE INDEX events_search_idx ON events USING gin (user_id, search)
    WITH (gin_pending_list_limit = 256);
CREATE INDEX messages_search_idx ON messages USING gin (user_id, search)
    WITH (gin_pending_list_limit = 256) WHERE search IS NOT NULL;
DROP FUNCTION pixie_user_terms(text, tsvector);
