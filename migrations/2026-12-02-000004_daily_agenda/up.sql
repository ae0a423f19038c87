-- The daily agenda (opt-in per user): at `agenda_at`, local time in the user's `timezone` (the
-- server's ai.timezone when unset), one reminder lists the day's events and the tasks due. It is
-- an ordinary reminder of kind 'agenda', fired on the same path; its text is written when it
-- fires, and firing it schedules the next day's. One waits per user at most.
ALTER TABLE users
    ADD COLUMN timezone  TEXT CHECK (char_length(timezone) BETWEEN 1 AND 64),
    ADD COLUMN agenda_at TIME;
ALTER TABLE reminders
    ADD COLUMN kind TEXT NOT NULL DEFAULT 'reminder' CHECK (kind IN ('reminder', 'agenda'));
CREATE UNIQUE INDEX reminders_agenda_key ON reminders (user_id)
    WHERE kind = 'agenda' AND status = 'scheduled';
