-- Web Push (RFC 8030): the push subscriptions of a user's browsers, and one delivery record per
-- fired reminder and subscription. The records are written in the transaction that fires the
-- reminder, so a crash between firing and pushing loses nothing; the push worker claims them
-- with FOR UPDATE SKIP LOCKED and a lease, and a record leaves 'pending' once, when its push
-- service answered (or it ran out of attempts or time).
CREATE TABLE push_subscriptions (
    id         UUID PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    endpoint   TEXT NOT NULL CHECK (char_length(endpoint) BETWEEN 1 AND 2048),
    -- The browser's P-256 public key and auth secret (base64url), as PushManager gives them.
    p256dh     TEXT NOT NULL CHECK (char_length(p256dh) <= 100),
    auth       TEXT NOT NULL CHECK (char_length(auth) <= 40),
    created_at TIMESTAMPTZ NOT NULL,
    -- The same browser subscribing again replaces its keys, not adds a subscription.
    UNIQUE (user_id, endpoint)
);

CREATE TABLE push_deliveries (
    reminder_id     UUID NOT NULL REFERENCES reminders (id) ON DELETE CASCADE,
    subscription_id UUID NOT NULL REFERENCES push_subscriptions (id) ON DELETE CASCADE,
    state           TEXT NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'sent', 'failed', 'expired')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    -- When the worker may (next) try: a claim moves it a lease ahead, so a worker that dies
    -- mid-send leaves it to be tried again.
    next_attempt_at TIMESTAMPTZ NOT NULL,
    -- Past this the reminder is stale: not pushed any more (and the push's TTL ends here).
    expires_at      TIMESTAMPTZ NOT NULL,
    -- The push service's last HTTP status, if it answered.
    last_status     INTEGER,
    done_at         TIMESTAMPTZ,
    PRIMARY KEY (reminder_id, subscription_id)
);
CREATE INDEX push_deliveries_pending_idx ON push_deliveries (next_attempt_at)
    WHERE state = 'pending';
CREATE INDEX push_deliveries_subscription_idx ON push_deliveries (subscription_id);
