-- A search by one user read the postings of every user: a GIN index on (user_id, search)
-- keeps the two columns' entries apart, so a common word ("task", "meeting") brought its
-- postings over all users' documents, which grow with the whole server. Each lexeme is now
-- indexed with its owner's prefix: a search reads only its user's postings of its words.
-- The prefix is 8 hex digits of md5(user_id), short keys; the query's `user_id = $1` keeps
-- out another user whose prefix is the same.
CREATE FUNCTION pixie_user_terms(owner text, search tsvector) RETURNS text[]
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT ARRAY(SELECT left(md5(owner), 8) || ':' || w
                         FROM unnest(tsvector_to_array(search)) AS w) $$;

DROP INDEX memories_search_idx;
DROP INDEX tasks_search_idx;
DROP INDEX events_search_idx;
DROP INDEX messages_search_idx;
-- No pending list: every search read all of it, every user's recent writes (2,400 entries,
-- 0.9 ms of a 1 ms search under the load of scripts/load.sh); a model turn searches as often
-- as it writes, and an entry written straight into the index costs less than that.
CREATE INDEX memories_search_idx ON memories USING gin (pixie_user_terms(user_id, search))
    WITH (fastupdate = off);
CREATE INDEX tasks_search_idx ON tasks USING gin (pixie_user_terms(user_id, search))
    WITH (fastupdate = off);
CREATE INDEX events_search_idx ON events USING gin (pixie_user_terms(user_id, search))
    WITH (fastupdate = off);
CREATE INDEX messages_search_idx ON messages USING gin (pixie_user_terms(user_id, search))
    WITH (fastupdate = off) WHERE search IS NOT NULL;
