-- A user's secret calendar feed (GET /ics/{token}.ics, for calendar apps that subscribe by
-- URL). The token is `<id>.<secret>`; only the SHA-256 of the secret is kept, compared in
-- constant time. One feed per user: a new one replaces the old, and revoking deletes it.
CREATE TABLE calendar_feeds (
    id          UUID PRIMARY KEY,
    user_id     TEXT NOT NULL UNIQUE REFERENCES users (id) ON DELETE CASCADE,
    secret_hash BYTEA NOT NULL CHECK (octet_length(secret_hash) = 32),
    created_at  TIMESTAMPTZ NOT NULL,
    -- The SHA-256 of the last body served and when it last changed: the feed's ETag and
    -- Last-Modified (a deleted event changes the body too, unlike any row's updated_at).
    content_hash       BYTEA,
    content_changed_at TIMESTAMPTZ
);
