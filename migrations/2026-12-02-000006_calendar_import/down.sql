DROP INDEX events_user_ical_uid;
ALTER TABLE events DROP COLUMN ical_uid, DROP COLUMN exdates, DROP COLUMN timezone;
