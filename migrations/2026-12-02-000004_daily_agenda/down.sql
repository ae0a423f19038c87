DROP INDEX reminders_agenda_key;
ALTER TABLE reminders DROP COLUMN kind;
ALTER TABLE users DROP COLUMN agenda_at, DROP COLUMN timezone;
