-- Users erased (DELETE /v1/me, Clerk's user.deleted). A session that began before the erasure
-- cannot bring the user back: its token, issued earlier, no longer signs in. Only the id and
-- the time are kept, and only for a while (see the erasure).
CREATE TABLE erased_users (
    id         TEXT PRIMARY KEY CHECK (char_length(id) BETWEEN 1 AND 255),
    erased_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX erased_users_erased_at_idx ON erased_users (erased_at);

-- Webhook deliveries handled (Svix `svix-id`), kept for as long as their signature could be
-- replayed, so that a replay does nothing.
CREATE TABLE webhook_deliveries (
    source       TEXT NOT NULL CHECK (char_length(source) BETWEEN 1 AND 32),
    id           TEXT NOT NULL CHECK (char_length(id) BETWEEN 1 AND 255),
    received_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (source, id)
);
CREATE INDEX webhook_deliveries_received_at_idx ON webhook_deliveries (received_at);
