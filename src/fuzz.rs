//! Entry points for the fuzz targets (`fuzz/`, run with `cargo fuzz`): each takes whatever a
//! client could send and checks the invariants of the code that reads it. A panic here is a
//! finding; every input that ever caused one is kept in `fuzz/regressions/` and replayed by the
//! tests below.

use chrono::{DateTime, Duration, TimeZone, Utc};
use futures_util::{FutureExt, StreamExt};

use crate::ai::llm::{LlmEvent, LlmMessage, LlmProvider, LlmRequest};
use crate::ai::offline::OfflineProvider;
use crate::domain::event::{Budget, NewEvent};
use crate::ws::packet::{EnginePacket, decode_engine, decode_packet, encode_packet};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 10, 0, 0)
        .single()
        .unwrap_or_else(Utc::now)
}

/// A WebSocket text frame from a client: decoding never panics, and a Socket.IO packet that
/// decodes is written back to text that decodes to the same packet.
pub fn socketio_frame(frame: &str) {
    let Ok(EnginePacket::Message(text)) = decode_engine(frame) else {
        return;
    };
    let Ok(packet) = decode_packet(text) else {
        return;
    };
    let _ = packet.event();
    let encoded = encode_packet(&packet);
    let again = encoded
        .strip_prefix('4')
        .map(decode_packet)
        .unwrap_or_else(|| panic!("an encoded packet is an Engine.IO message: {encoded:?}"));
    let again = again.unwrap_or_else(|e| panic!("{text:?} written as {encoded:?}: {e}"));
    let same = again.kind == packet.kind
        && again.namespace == packet.namespace
        && again.attachments == packet.attachments
        && again.ack_id == packet.ack_id
        && match (&again.data, &packet.data) {
            (Some(a), Some(b)) => same_json(a, b),
            (a, b) => a == b,
        };
    assert!(same, "round trip of {text:?} via {encoded:?}: {again:?}");
}

/// Equal JSON, floats within rounding: serde_json reads long decimals to the nearest double
/// only approximately, so a float written back may read a few ulps away.
fn same_json(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            let (x, y) = (
                x.as_f64().unwrap_or(f64::NAN),
                y.as_f64().unwrap_or(f64::NAN),
            );
            (x - y).abs() <= f64::EPSILON * 8.0 * x.abs().max(y.abs())
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

/// An event's recurrence rule, as a client writes it: refused with an error, or expanded
/// within the listing budget.
pub fn recurrence(rule: &str) {
    let start = now();
    let new = NewEvent {
        title: "fuzz".into(),
        description: None,
        location: None,
        start_at: start,
        end_at: start + Duration::hours(1),
        is_all_day: false,
        recurrence: Some(rule.to_owned()),
        alerts: vec![10],
    };
    let Ok(event) = new.validate(uuid::Uuid::nil(), start) else {
        return;
    };
    let tz = chrono_tz::Europe::Berlin;
    let _ = event.next_start_after(tz, start);
    let mut budget = Budget::for_listing();
    if let Ok(found) = event.occurrences(
        tz,
        start,
        start + Duration::days(366),
        None,
        50,
        &mut budget,
    ) {
        assert!(found.len() <= 50, "at most the limit");
        assert!(
            found.windows(2).all(|w| w[0].start_at <= w[1].start_at),
            "in start order"
        );
    }
}

/// An uploaded iCalendar file: parsed, or refused with a line number.
pub fn icalendar(text: &str) {
    let _ = crate::http::calendar_import::parse(text, chrono_tz::UTC);
}

/// A chat message to the offline assistant (its intent and date parsing): an answer or tool
/// calls with JSON object arguments, never a panic.
pub fn offline_message(text: &str) {
    let provider = OfflineProvider::at(chrono_tz::Europe::Berlin, now());
    let request = LlmRequest {
        system: String::new(),
        messages: vec![LlmMessage::User(text.to_owned())],
        tools: crate::ai::tools::all().into(),
        max_tokens: 1024,
    };
    let Some(Ok(stream)) = provider.stream(&request).now_or_never() else {
        panic!("the offline assistant answers at once");
    };
    let Some(events) = stream.collect::<Vec<_>>().now_or_never() else {
        panic!("the offline assistant's stream is ready at once");
    };
    for event in events {
        if let Ok(LlmEvent::ToolCall(call)) = event {
            let arguments: serde_json::Value = serde_json::from_str(&call.arguments)
                .unwrap_or_else(|e| panic!("{text:?}: arguments are JSON: {e}"));
            assert!(arguments.is_object(), "{text:?}: {arguments}");
        }
    }
}

#[cfg(test)]
mod tests {
    /// A fuzz target: what it is called, and its entry point.
    type Target = (&'static str, fn(&str));

    /// Every input a fuzz target ever failed on, replayed: `fuzz/regressions/<target>/*`.
    #[test]
    fn the_inputs_fuzzing_found_stay_fixed() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
        let targets: [Target; 4] = [
            ("socketio_frame", super::socketio_frame),
            ("recurrence", super::recurrence),
            ("icalendar", super::icalendar),
            ("offline_message", super::offline_message),
        ];
        let mut replayed = 0;
        for (name, target) in targets {
            let Ok(dir) = std::fs::read_dir(root.join(name)) else {
                continue;
            };
            for file in dir.flatten() {
                let bytes = std::fs::read(file.path()).unwrap_or_default();
                target(&String::from_utf8_lossy(&bytes));
                replayed += 1;
            }
        }
        // Also a few shapes each target must take in its stride.
        super::socketio_frame("42[\"chat:send\",{\"text\":\"hi\"}]");
        super::socketio_frame("451-[\"x\",{\"_placeholder\":true,\"num\":0}]");
        super::recurrence("FREQ=SECONDLY;BYSECOND=0,1,2");
        super::recurrence("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30");
        super::icalendar("BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nRRULE:FREQ=DAILY\r\n");
        super::offline_message("remind me in 99999999999999 minutes to breathe");
        eprintln!("{replayed} regression inputs replayed");
    }
}
