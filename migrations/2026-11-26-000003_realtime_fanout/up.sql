-- Events too large for a NOTIFY payload (8000 bytes) cross between instances through this
-- table: the notification carries the row id. Rows are transient (read within milliseconds,
-- swept after minutes), so the table is unlogged: no WAL, and emptied after a crash.
CREATE UNLOGGED TABLE realtime_payloads (
    id BIGSERIAL PRIMARY KEY,
    body TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
