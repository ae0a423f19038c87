DROP INDEX messages_reply_to_idx;
ALTER TABLE messages DROP COLUMN reply_to;
