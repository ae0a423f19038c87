//! The sockets of this process, by user, and delivery to them.
//!
//! Every socket has a bounded queue of encoded frames, drained by its own task. Delivery never
//! waits: a socket whose queue is full is disconnected (with a log line) rather than allowed to
//! grow memory or hold up the others.
//!
//! The hub also follows every turn in flight from the steps the `chat:*` events carry (from
//! the internal `chat:started`, sent when the turn is scheduled, to `chat:done` or
//! `chat:error`), so that a socket that (re)connects mid-answer can `chat:resume`: the answer
//! to that request is queued under the same lock as the deltas, so the text it carries is
//! exactly what came before it in that socket's stream, and the deltas after it are exactly
//! the rest.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use bytestring::ByteString;
use serde_json::json;
use uuid::Uuid;

use super::packet;
use super::queue::{FrameQueue, Offer, SessionEnd};
use serde_json::value::RawValue;

use crate::domain::UserId;
use crate::domain::bus::Signal;
use crate::domain::chat::TurnStep;

/// A socket's id (random, unique across instances).
pub type SocketId = Arc<str>;

pub struct Hub {
    inner: Mutex<Inner>,
    queue: usize,
    max_sockets_per_user: usize,
}

#[derive(Default)]
struct Inner {
    users: HashMap<UserId, Vec<Peer>>,
    /// (user, conversation) → the turns scheduled there, in order: the first is the one
    /// running (or next to run).
    inflight: HashMap<(UserId, Uuid), Vec<Inflight>>,
    sockets: usize,
}

struct Peer {
    sid: SocketId,
    frames: Arc<FrameQueue>,
}

struct Inflight {
    message_id: Uuid,
    text: String,
}

/// The user already holds the most sockets allowed.
#[derive(Debug)]
pub struct TooManySockets;

/// A socket's place in the hub; dropping it removes the socket.
pub struct Registration {
    hub: Arc<Hub>,
    user: UserId,
    sid: SocketId,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.hub.remove(&self.user, &self.sid);
    }
}

impl Hub {
    pub fn new(queue: usize, max_sockets_per_user: usize) -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::default(),
            queue: queue.max(1),
            max_sockets_per_user,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a socket of the user. Frames for it arrive on its queue, which also tells when the
    /// hub gives up on it (the queue overflowed).
    pub fn register(
        self: &Arc<Self>,
        user: &UserId,
        sid: SocketId,
    ) -> Result<(Registration, Arc<FrameQueue>), TooManySockets> {
        let frames = Arc::new(FrameQueue::new(self.queue));
        let mut inner = self.lock();
        let peers = inner.users.entry(user.clone()).or_default();
        if peers.len() >= self.max_sockets_per_user {
            return Err(TooManySockets);
        }
        peers.push(Peer {
            sid: sid.clone(),
            frames: frames.clone(),
        });
        inner.sockets += 1;
        Ok((
            Registration {
                hub: self.clone(),
                user: user.clone(),
                sid,
            },
            frames,
        ))
    }

    fn remove(&self, user: &UserId, sid: &str) {
        let mut inner = self.lock();
        let Some(peers) = inner.users.get_mut(user) else {
            return;
        };
        let before = peers.len();
        peers.retain(|p| &*p.sid != sid);
        let removed = before - peers.len();
        if peers.is_empty() {
            inner.users.remove(user);
        }
        inner.sockets -= removed;
    }

    /// Sockets connected to this process.
    pub fn sockets(&self) -> usize {
        self.lock().sockets
    }

    /// Sends an event to every socket of the user here, except `origin`, and follows the
    /// turn it is a step of. `payload` is JSON text; an event without one (`chat:started`)
    /// is followed, not sent.
    pub fn deliver(
        &self,
        user: &UserId,
        name: &str,
        payload: Option<&str>,
        step: Option<&TurnStep>,
        origin: Option<&str>,
    ) {
        let frame = payload.map(|payload| ByteString::from(packet::event_frame(name, payload)));
        let mut inner = self.lock();
        if let Some(step) = step {
            track(&mut inner, user, step);
        }
        let Some(frame) = frame else {
            return;
        };
        let Some(peers) = inner.users.get_mut(user) else {
            return;
        };
        let before = peers.len();
        peers.retain(|peer| {
            if origin.is_some_and(|origin| *peer.sid == *origin) {
                return true;
            }
            offer(peer, user, frame.clone())
        });
        let dropped = before - peers.len();
        if peers.is_empty() {
            inner.users.remove(user);
        }
        inner.sockets -= dropped;
    }

    /// Acts on a signal for the sockets here: delivers an event, or ends an erased user's
    /// sessions (a cancel is the domain's alone).
    pub fn apply(&self, signal: &Signal) {
        match signal {
            Signal::Event(delivery) => self.deliver(
                &delivery.user,
                &delivery.name,
                delivery.payload.as_deref().map(RawValue::get),
                delivery.step.as_ref(),
                delivery.origin.as_deref(),
            ),
            Signal::Erased { user } => {
                let sockets = self.end_sessions(user, SessionEnd::UserErased);
                tracing::info!(user = %user, sockets, "erased user's sessions ended here");
            }
            Signal::Cancel { .. } => {}
        }
    }

    /// Queues an event for one socket only, in order with its other events.
    pub fn send_event(&self, user: &UserId, sid: &str, name: &str, payload: &str) {
        let frame = ByteString::from(packet::event_frame(name, payload));
        self.send_to(&mut self.lock(), user, sid, frame);
    }

    /// Answers `chat:resume`: the answer being streamed in the conversation so far, queued
    /// for the socket in order with the deltas (see the module documentation).
    pub fn resume(&self, user: &UserId, sid: &str, conversation: Uuid, ack_id: u64) {
        let mut inner = self.lock();
        let first = inner
            .inflight
            .get(&(user.clone(), conversation))
            .and_then(|turns| turns.first());
        let payload = match first {
            Some(turn) => json!({
                "ok": true,
                "inFlight": true,
                "messageId": turn.message_id,
                "text": turn.text,
            }),
            None => json!({ "ok": true, "inFlight": false }),
        };
        let frame = ByteString::from(packet::ack_frame(ack_id, payload));
        self.send_to(&mut inner, user, sid, frame);
    }

    fn send_to(&self, inner: &mut Inner, user: &UserId, sid: &str, frame: ByteString) {
        let Some(peers) = inner.users.get_mut(user) else {
            return;
        };
        if let Some(i) = peers.iter().position(|p| &*p.sid == sid)
            && !offer(&peers[i], user, frame)
        {
            peers.swap_remove(i);
            inner.sockets -= 1;
        }
    }

    /// Ends every session of the user here: each socket gets what was queued for it, then
    /// `session:ended` and a disconnect. Returns how many sockets that was.
    pub fn end_sessions(&self, user: &UserId, why: SessionEnd) -> usize {
        let mut inner = self.lock();
        inner.inflight.retain(|(owner, _), _| owner != user);
        let Some(peers) = inner.users.get(user) else {
            return 0;
        };
        for peer in peers {
            peer.frames.end(why);
        }
        peers.len()
    }

    /// Turns being streamed (for tests and metrics).
    pub fn turns_in_flight(&self) -> usize {
        self.lock().inflight.len()
    }
}

/// Queues a frame for a peer; false (and the peer is told to go) when it cannot take it.
fn offer(peer: &Peer, user: &UserId, frame: ByteString) -> bool {
    match peer.frames.offer(frame) {
        Offer::Queued => true,
        Offer::Overflowed => {
            tracing::warn!(
                user = %user,
                socket = %peer.sid,
                "socket disconnected: it did not read its events fast enough (queue full)"
            );
            false
        }
        // Dismissed before; its task is closing it.
        Offer::Killed => false,
    }
}

/// Follows the turns in flight from their steps.
fn track(inner: &mut Inner, user: &UserId, step: &TurnStep) {
    let (conversation, answer) = match step {
        TurnStep::Started {
            conversation,
            answer,
        }
        | TurnStep::Streamed {
            conversation,
            answer,
            ..
        }
        | TurnStep::Ended {
            conversation,
            answer,
        } => (*conversation, *answer),
    };
    let key = (user.clone(), conversation);
    if let TurnStep::Ended { .. } = step {
        if let Some(turns) = inner.inflight.get_mut(&key) {
            turns.retain(|t| t.message_id != answer);
            if turns.is_empty() {
                inner.inflight.remove(&key);
            }
        }
        return;
    }
    let turns = inner.inflight.entry(key).or_default();
    let at = match turns.iter().position(|t| t.message_id == answer) {
        Some(at) => at,
        None => {
            turns.push(Inflight {
                message_id: answer,
                text: String::new(),
            });
            turns.len() - 1
        }
    };
    if let TurnStep::Streamed { text, .. } = step {
        // Turns of a conversation run one at a time, in order: those before a turn that
        // streams have ended, whether or not their end was seen here.
        turns.drain(..at);
        turns[0].text.push_str(text);
    }
}

#[cfg(test)]
mod tests {
    use super::super::queue::Next;
    use super::*;

    fn alice() -> UserId {
        UserId::parse("alice").unwrap()
    }

    #[tokio::test]
    async fn delivery_skips_the_origin_and_other_users() {
        let hub = Hub::new(8, 4);
        let (_a1, rx1) = hub.register(&alice(), "a1".into()).unwrap();
        let (_a2, rx2) = hub.register(&alice(), "a2".into()).unwrap();
        let bob = UserId::parse("bob").unwrap();
        let (_b, rxb) = hub.register(&bob, "b".into()).unwrap();
        hub.deliver(
            &alice(),
            "task:deleted",
            Some(r#"{"id":1}"#),
            None,
            Some("a1"),
        );
        assert_eq!(
            rx2.next().await,
            Next::Frame(r#"42["task:deleted",{"id":1}]"#.into())
        );
        assert!(rx1.try_next().is_none());
        assert!(rxb.try_next().is_none());
    }

    #[tokio::test]
    async fn a_full_queue_disconnects_that_socket_only() {
        let hub = Hub::new(2, 4);
        let (_slow, slow) = hub.register(&alice(), "slow".into()).unwrap();
        let (_fast, fast) = hub.register(&alice(), "fast".into()).unwrap();
        for i in 0..3 {
            hub.deliver(&alice(), "e", Some(&i.to_string()), None, None);
            assert!(matches!(fast.next().await, Next::Frame(_)));
        }
        assert!(slow.is_killed());
        assert_eq!(slow.next().await, Next::Killed);
        assert!(!fast.is_killed());
        assert_eq!(hub.sockets(), 1);
    }

    #[test]
    fn sockets_per_user_are_limited_and_released() {
        let hub = Hub::new(2, 1);
        let first = hub.register(&alice(), "1".into()).unwrap();
        assert!(hub.register(&alice(), "2".into()).is_err());
        drop(first);
        assert!(hub.register(&alice(), "3".into()).is_ok());
    }

    #[tokio::test]
    async fn resume_carries_what_was_streamed_before_it() {
        let hub = Hub::new(16, 4);
        let (_r, rx) = hub.register(&alice(), "s".into()).unwrap();
        let conversation = Uuid::now_v7();
        let (answer, queued) = (Uuid::now_v7(), Uuid::now_v7());
        let delta = |text: &str| {
            let payload =
                json!({"conversationId": conversation, "messageId": answer, "text": text});
            let step = TurnStep::Streamed {
                conversation,
                answer,
                text: text.to_owned(),
            };
            hub.deliver(
                &alice(),
                "chat:delta",
                Some(&payload.to_string()),
                Some(&step),
                None,
            );
        };
        for id in [answer, queued] {
            let started = TurnStep::Started {
                conversation,
                answer: id,
            };
            hub.deliver(&alice(), "chat:started", None, Some(&started), None);
        }
        assert!(rx.try_next().is_none(), "chat:started is not sent");
        hub.resume(&alice(), "s", conversation, 6);
        assert_eq!(
            &*rx.try_next().unwrap(),
            format!(r#"436[{{"ok":true,"inFlight":true,"messageId":"{answer}","text":""}}]"#)
        );
        delta("Hel");
        hub.resume(&alice(), "s", conversation, 7);
        delta("lo");
        let frames: Vec<String> = (0..3).map(|_| rx.try_next().unwrap().to_string()).collect();
        assert!(frames[0].contains("Hel"));
        assert_eq!(
            frames[1],
            format!(r#"437[{{"ok":true,"inFlight":true,"messageId":"{answer}","text":"Hel"}}]"#)
        );
        assert!(frames[2].contains(r#""text":"lo""#));
        for id in [answer, queued] {
            let ended = TurnStep::Ended {
                conversation,
                answer: id,
            };
            hub.deliver(&alice(), "chat:done", Some("{}"), Some(&ended), None);
            let _done = rx.try_next().unwrap();
        }
        assert_eq!(hub.turns_in_flight(), 0);
        hub.resume(&alice(), "s", conversation, 8);
        assert_eq!(
            &*rx.try_next().unwrap(),
            r#"438[{"ok":true,"inFlight":false}]"#
        );
    }
}
