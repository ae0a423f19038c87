ALTER TABLE events DROP COLUMN alerts;
DROP TABLE reminders;
