-- One waiting reminder per alert and occurrence of an event: the scheduler (making the next
-- one when an alert fires) and an edit of the event (making them anew) may race, and the
-- second to write then adds nothing.
CREATE UNIQUE INDEX reminders_alert_series_key ON reminders (event_id, alert_minutes, occurrence_at)
    WHERE status = 'scheduled' AND alert_minutes IS NOT NULL;
