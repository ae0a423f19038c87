-- What an iCalendar import needs of an event (POST /v1/calendar/import):
-- the zone a recurring event repeats in, when it is not the server's (a TZID of the file);
-- the starts of occurrences the series skips (EXDATE, and occurrences a RECURRENCE-ID
-- override moved elsewhere);
-- and the UID it was imported under, so that importing the same file again updates it.
ALTER TABLE events
    ADD COLUMN timezone TEXT,
    ADD COLUMN exdates TIMESTAMPTZ[] NOT NULL DEFAULT '{}',
    ADD COLUMN ical_uid TEXT;
CREATE UNIQUE INDEX events_user_ical_uid ON events (user_id, ical_uid) WHERE ical_uid IS NOT NULL;
