"""Reads an iCalendar file with Python's icalendar and expands it with recurring_ical_events
over [from, to): prints, as JSON, each VEVENT occurrence (uid, start and end in UTC, or the date
of an all-day one), each VALARM trigger, and each VTODO (uid, due in UTC).

    python expand.py calendar.ics 2027-03-01T00:00:00Z 2027-06-01T00:00:00Z
"""

import datetime as dt
import json
import sys

import icalendar
import recurring_ical_events


def utc(value):
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise SystemExit(f"floating time in the export: {value}")
        return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return value.isoformat()


def main():
    path, start, end = sys.argv[1:4]
    with open(path, "rb") as f:
        calendar = icalendar.Calendar.from_ical(f.read())
    start = dt.datetime.fromisoformat(start.replace("Z", "+00:00"))
    end = dt.datetime.fromisoformat(end.replace("Z", "+00:00"))
    occurrences = []
    for event in recurring_ical_events.of(calendar).between(start, end):
        occurrences.append(
            {
                "uid": str(event["UID"]),
                "start": utc(event["DTSTART"].dt),
                "end": utc(event["DTEND"].dt),
            }
        )
    alarms = {}
    for event in calendar.walk("VEVENT"):
        alarms[str(event["UID"])] = sorted(
            int(-alarm["TRIGGER"].dt.total_seconds() // 60) for alarm in event.walk("VALARM")
        )
    todos = [
        {"uid": str(todo["UID"]), "summary": str(todo["SUMMARY"]), "due": utc(todo["DUE"].dt)}
        for todo in calendar.walk("VTODO")
    ]
    occurrences.sort(key=lambda o: (o["start"], o["uid"]))
    print(json.dumps({"occurrences": occurrences, "alarms": alarms, "todos": todos}))


if __name__ == "__main__":
    main()
