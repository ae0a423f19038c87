//! The `offline` provider: a deterministic English intent parser behind [`LlmProvider`], so the
//! server works with no API key. It makes the same tool calls a model would, through the same
//! tool loop: on a user message it answers with tool calls (or with text when no tool is
//! needed); on tool results it writes the final answer from them, and never calls a tool again.
//!
//! What it understands (case-insensitive, polite filler such as "please" or "can you" ignored):
//! - tasks: add ("add a task to buy milk tomorrow", "remind me to call mom next Friday 5pm",
//!   "todo: file taxes in 3 days", "add buy milk to my list", with "urgent", "high priority",
//!   "#project"), list ("what are my tasks", "list completed tasks", "what's due today"),
//!   complete ("mark buy milk as done", "I finished the report"), delete ("remove call mom from
//!   my list") and move ("move buy milk to Friday");
//! - events: schedule ("meeting with Sam on Friday at 3pm for 1 hour", "lunch with Ana next
//!   Tuesday at noon for 90 minutes", "dinner at Luigi's at 7pm" with a location, "team standup
//!   every Monday at 9am" as a weekly rule), list ("what's on my calendar tomorrow", "events this
//!   week", "what's next week") and cancel ("cancel the meeting with Sam");
//! - memory: remember ("remember that…", "note: …") and search ("what do you know about my
//!   sister", "recall wifi"; any other question goes to the memory search);
//! - greetings, thanks and help; anything else gets a reply listing what it can do.
//!
//! Dates and times are read in the configured zone (module `when`) and sent as RFC 3339 with the
//! zone's offset ("2026-11-27T17:00:00+01:00", "Z" in UTC). A task dated without a time is due
//! at 09:00 that day (23:59 when that has passed today); an event without a time is an all-day
//! event; an event without a length lasts 60 minutes.
//!
//! What it does not do: more than one request per message, pronouns or follow-ups ("move it to
//! Monday"), edits other than a task's due date, negations, other languages. Titles are the
//! user's words minus the date, priority and project phrases; the domain matches the titles of
//! existing tasks and events fuzzily.

mod intent;
mod reply;
mod when;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, NaiveDateTime, SecondsFormat, TimeZone, Utc};
use chrono_tz::Tz;

use super::llm::{
    LlmError, LlmEvent, LlmMessage, LlmProvider, LlmRequest, LlmStream, LlmToolCall, StopReason,
};
use intent::Outcome;

/// Words per streamed text delta.
const WORDS_PER_DELTA: usize = 3;

/// The deterministic, networkless [`LlmProvider`].
#[derive(Clone)]
pub struct OfflineProvider {
    tz: Tz,
    clock: Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>,
}

impl fmt::Debug for OfflineProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OfflineProvider")
            .field("tz", &self.tz)
            .finish_non_exhaustive()
    }
}

impl OfflineProvider {
    /// Reads dates in `tz`, relative to the wall clock.
    pub fn new(tz: Tz) -> Self {
        Self::with_clock(tz, Utc::now)
    }

    /// Reads dates in `tz`, relative to what `clock` says (for tests and replays).
    pub fn with_clock(tz: Tz, clock: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        Self {
            tz,
            clock: Arc::new(clock),
        }
    }

    /// Reads dates in `tz`, relative to a fixed `now`.
    pub fn at(tz: Tz, now: DateTime<Utc>) -> Self {
        Self::with_clock(tz, move || now)
    }

    /// The whole answer to a request, as the events the stream will carry.
    fn respond(&self, request: &LlmRequest) -> Vec<LlmEvent> {
        let now = Now {
            tz: self.tz,
            local: (self.clock)().with_timezone(&self.tz).naive_local(),
        };
        let (text, calls) = match request.messages.last() {
            Some(LlmMessage::User(text)) => match intent::understand(text, &now) {
                Outcome::Say(text) => (text, Vec::new()),
                Outcome::Calls(calls) => (String::new(), calls),
            },
            Some(LlmMessage::ToolResults(results)) => {
                let calls = request.messages.iter().rev().find_map(|m| match m {
                    LlmMessage::Assistant { tool_calls, .. } => Some(tool_calls.as_slice()),
                    _ => None,
                });
                let asked = request.messages.iter().rev().find_map(|m| match m {
                    LlmMessage::User(text) => Some(text.as_str()),
                    _ => None,
                });
                (
                    reply::answer(calls.unwrap_or_default(), results, asked, &now),
                    Vec::new(),
                )
            }
            _ => (intent::GREETING.to_string(), Vec::new()),
        };
        let turn = request.messages.len();
        let calls: Vec<LlmToolCall> = calls
            .into_iter()
            .enumerate()
            .map(|(n, (name, args))| LlmToolCall {
                id: format!("call_{turn}_{}", n + 1),
                name: name.to_string(),
                arguments: args.to_string(),
            })
            .collect();
        let output_tokens = words(&text) + calls.iter().map(|c| words(&c.arguments)).sum::<u64>();
        let stop = if calls.is_empty() {
            StopReason::EndTurn
        } else {
            StopReason::ToolUse
        };
        let mut events: Vec<LlmEvent> =
            deltas(&text).into_iter().map(LlmEvent::TextDelta).collect();
        events.extend(calls.into_iter().map(LlmEvent::ToolCall));
        events.push(LlmEvent::Usage {
            input_tokens: input_tokens(request),
            output_tokens,
        });
        events.push(LlmEvent::Stop(stop));
        events
    }
}

#[async_trait]
impl LlmProvider for OfflineProvider {
    fn name(&self) -> &'static str {
        "offline"
    }

    /// It parses the user's message and the tools' results, nothing else.
    fn reads_system_prompt(&self) -> bool {
        false
    }

    async fn stream(&self, request: &LlmRequest) -> Result<LlmStream, LlmError> {
        let events = self.respond(request);
        Ok(Box::pin(futures_util::stream::iter(
            events.into_iter().map(Ok),
        )))
    }
}

/// The user's zone and the local wall time of this call.
#[derive(Debug, Clone, Copy)]
struct Now {
    tz: Tz,
    local: NaiveDateTime,
}

impl Now {
    /// RFC 3339 of a local wall time in the zone. A time skipped by a daylight-saving change
    /// moves an hour on; an ambiguous one takes the earlier instant.
    fn stamp(&self, local: NaiveDateTime) -> String {
        let at = self.tz.from_local_datetime(&local).earliest().or_else(|| {
            self.tz
                .from_local_datetime(&(local + Duration::hours(1)))
                .earliest()
        });
        match at {
            Some(at) => at.to_rfc3339_opts(SecondsFormat::Secs, true),
            None => local.and_utc().to_rfc3339_opts(SecondsFormat::Secs, true),
        }
    }
}

/// The text cut into deltas of a few words, whitespace kept, so they join back exactly.
fn deltas(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chunk = String::new();
    let mut count = 0;
    for piece in text.split_inclusive(char::is_whitespace) {
        chunk.push_str(piece);
        if !piece.trim().is_empty() {
            count += 1;
        }
        if count == WORDS_PER_DELTA && piece.ends_with(char::is_whitespace) {
            out.push(std::mem::take(&mut chunk));
            count = 0;
        }
    }
    if !chunk.is_empty() {
        out.push(chunk);
    }
    out
}

fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// A rough token count: the words of everything the request carries.
fn input_tokens(request: &LlmRequest) -> u64 {
    request
        .messages
        .iter()
        .map(|m| match m {
            LlmMessage::User(text) => words(text),
            LlmMessage::Assistant { text, tool_calls } => {
                words(text) + tool_calls.iter().map(|c| words(&c.arguments)).sum::<u64>()
            }
            LlmMessage::ToolResults(results) => results.iter().map(|r| words(&r.content)).sum(),
        })
        .sum::<u64>()
        + words(&request.system)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use chrono_tz::{America::New_York, Europe::Berlin, UTC};
    use futures_util::StreamExt;
    use serde_json::{Value, json};

    use super::*;
    use crate::ai::llm::ToolResult;

    fn provider() -> OfflineProvider {
        OfflineProvider::at(
            Berlin,
            Utc.with_ymd_and_hms(2026, 11, 26, 10, 0, 0).unwrap(),
        )
    }

    fn request(messages: Vec<LlmMessage>) -> LlmRequest {
        LlmRequest {
            system: "You are Pixie.".into(),
            messages,
            tools: std::sync::Arc::from([]),
            max_tokens: 1024,
        }
    }

    fn text_of(events: &[LlmEvent]) -> String {
        events
            .iter()
            .filter_map(|e| {
                if let LlmEvent::TextDelta(t) = e {
                    Some(t.as_str())
                } else {
                    None
                }
            })
            .collect()
    }

    fn calls_of(events: &[LlmEvent]) -> Vec<LlmToolCall> {
        events
            .iter()
            .filter_map(|e| {
                if let LlmEvent::ToolCall(c) = e {
                    Some(c.clone())
                } else {
                    None
                }
            })
            .collect()
    }

    /// Every answer ends with usage then a stop event, and has nothing after them.
    fn assert_well_formed(events: &[LlmEvent]) -> StopReason {
        match events {
            [
                ..,
                LlmEvent::Usage {
                    input_tokens,
                    output_tokens,
                },
                LlmEvent::Stop(stop),
            ] => {
                assert!(*input_tokens > 0 && *output_tokens > 0, "{events:?}");
                *stop
            }
            _ => panic!("no usage and stop at the end: {events:?}"),
        }
    }

    #[tokio::test]
    async fn a_request_streams_tool_calls_then_usage_then_stop() {
        let provider = provider();
        assert_eq!(provider.name(), "offline");
        let req = request(vec![LlmMessage::User(
            "remind me to call mom next Friday 5pm".into(),
        )]);
        let events: Vec<LlmEvent> = provider
            .stream(&req)
            .await
            .unwrap()
            .map(Result::unwrap)
            .collect()
            .await;
        assert_eq!(assert_well_formed(&events), StopReason::ToolUse);
        assert_eq!(text_of(&events), "");
        let calls = calls_of(&events);
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].id, "call_1_1");
        assert_eq!(calls[0].name, "create_reminder");
        let args: Value = serde_json::from_str(&calls[0].arguments).unwrap();
        assert_eq!(
            args,
            json!({"text": "Call mom", "due_at": "2026-11-27T17:00:00+01:00"})
        );
    }

    #[test]
    fn a_whole_turn_ends_with_an_answer_from_the_results() {
        let provider = provider();
        let mut messages = vec![
            LlmMessage::User("hi".into()),
            LlmMessage::Assistant {
                text: intent::GREETING.into(),
                tool_calls: Vec::new(),
            },
            LlmMessage::User("meeting with Sam on Friday at 3pm".into()),
        ];
        let first = provider.respond(&request(messages.clone()));
        let calls = calls_of(&first);
        // Ids are deterministic: from the number of messages and the call's position.
        assert_eq!(
            calls.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
            ["call_3_1"]
        );
        assert_eq!(
            provider.respond(&request(messages.clone())),
            first,
            "the same request gives the same answer"
        );
        let event = json!({"event": {"title": "Meeting with Sam", "startAt": "2026-11-27T14:00:00Z", "endAt": "2026-11-27T15:00:00Z", "isAllDay": false}});
        messages.push(LlmMessage::Assistant {
            text: String::new(),
            tool_calls: calls,
        });
        messages.push(LlmMessage::ToolResults(vec![ToolResult {
            call_id: "call_3_1".into(),
            content: event.to_string(),
            is_error: false,
        }]));
        let answer = provider.respond(&request(messages));
        assert_eq!(assert_well_formed(&answer), StopReason::EndTurn);
        assert!(
            calls_of(&answer).is_empty(),
            "never a tool call in answer to tool results"
        );
        assert_eq!(
            text_of(&answer),
            "Scheduled “Meeting with Sam” on Fri 27 Nov, 15:00–16:00."
        );
    }

    #[test]
    fn an_error_result_is_explained() {
        let call = LlmToolCall {
            id: "call_1_1".into(),
            name: "complete_task".into(),
            arguments: json!({"title": "buy milk"}).to_string(),
        };
        let messages = vec![
            LlmMessage::User("mark buy milk as done".into()),
            LlmMessage::Assistant {
                text: String::new(),
                tool_calls: vec![call],
            },
            LlmMessage::ToolResults(vec![ToolResult {
                call_id: "call_1_1".into(),
                content: json!({"error": "no task matches \"buy milk\""}).to_string(),
                is_error: true,
            }]),
        ];
        let answer = provider().respond(&request(messages));
        assert_eq!(assert_well_formed(&answer), StopReason::EndTurn);
        assert_eq!(
            text_of(&answer),
            "Sorry, I couldn't complete “buy milk”: no task matches \"buy milk\"."
        );
    }

    #[test]
    fn text_is_streamed_in_several_deltas() {
        let events =
            provider().respond(&request(vec![LlmMessage::User("what can you do?".into())]));
        assert_eq!(assert_well_formed(&events), StopReason::EndTurn);
        assert!(calls_of(&events).is_empty());
        let deltas = events
            .iter()
            .filter(|e| matches!(e, LlmEvent::TextDelta(_)))
            .count();
        assert!(deltas > 10, "{deltas} deltas");
        assert_eq!(
            text_of(&events),
            intent::HELP,
            "the deltas join back to the exact text"
        );
        assert_eq!(
            super::deltas("one two three four"),
            ["one two three ", "four"]
        );
        assert_eq!(super::deltas("a\n\nb"), ["a\n\nb"]);
        assert!(super::deltas("").is_empty());
    }

    #[test]
    fn unknown_requests_get_a_helpful_text_answer() {
        let events = provider().respond(&request(vec![LlmMessage::User("sing me a song".into())]));
        assert_eq!(assert_well_formed(&events), StopReason::EndTurn);
        assert!(calls_of(&events).is_empty());
        let text = text_of(&events);
        assert!(
            text.starts_with("Sorry, I didn't understand that.")
                && text.contains("remember that Sam likes green tea"),
            "{text}"
        );
    }

    #[test]
    fn odd_requests_still_get_a_well_formed_answer() {
        let provider = OfflineProvider::with_clock(New_York, Utc::now);
        let odd = [
            "",
            "   ",
            "🙂🙂",
            "?!?!",
            &"x".repeat(10_000),
            "\u{0}\u{7}",
            "at at at",
            "remind me to",
        ];
        for text in odd {
            let events = provider.respond(&request(vec![LlmMessage::User(text.to_string())]));
            assert_well_formed(&events);
        }
        // No messages, or the model's own message last: a greeting, no tool call.
        for messages in [
            Vec::new(),
            vec![LlmMessage::Assistant {
                text: "hi".into(),
                tool_calls: Vec::new(),
            }],
        ] {
            let events = provider.respond(&request(messages));
            assert_eq!(assert_well_formed(&events), StopReason::EndTurn);
        }
        // Results with no preceding call still get an answer.
        let orphan = vec![LlmMessage::ToolResults(vec![ToolResult {
            call_id: "x".into(),
            content: "{}".into(),
            is_error: false,
        }])];
        assert_eq!(text_of(&provider.respond(&request(orphan))), "Done.");
    }

    #[test]
    fn stamps_follow_the_zone_across_daylight_saving_changes() {
        let at = |tz, y, m, d, h, min| {
            Now {
                tz,
                local: NaiveDateTime::default(),
            }
            .stamp(
                chrono::NaiveDate::from_ymd_opt(y, m, d)
                    .unwrap()
                    .and_hms_opt(h, min, 0)
                    .unwrap(),
            )
        };
        assert_eq!(at(UTC, 2026, 11, 27, 17, 0), "2026-11-27T17:00:00Z");
        assert_eq!(at(Berlin, 2026, 11, 27, 17, 0), "2026-11-27T17:00:00+01:00");
        assert_eq!(at(Berlin, 2027, 7, 1, 9, 0), "2027-07-01T09:00:00+02:00");
        // 02:30 does not exist in New York on 14 March 2027: an hour on.
        assert_eq!(
            at(New_York, 2027, 3, 14, 2, 30),
            "2027-03-14T03:30:00-04:00"
        );
        // 01:30 happens twice on 1 November 2026: the earlier one.
        assert_eq!(
            at(New_York, 2026, 11, 1, 1, 30),
            "2026-11-01T01:30:00-04:00"
        );
    }
}
