-- An assistant message answers one user message: a retried turn (same clientMessageId) finds
-- the stored answer instead of running again.
ALTER TABLE messages ADD COLUMN reply_to UUID REFERENCES messages (id) ON DELETE CASCADE;
CREATE UNIQUE INDEX messages_reply_to_idx ON messages (reply_to) WHERE reply_to IS NOT NULL;
