//! The sockets of this process, by user, and delivery to them.
//!
//! Every socket has a bounded queue of encoded frames, drained by its own task. Delivery never
//! waits: a socket whose queue is full is disconnected (with a log line) rather than allowed to
//! grow memory or hold up the others.
//!
//! The hub also follows every turn in flight from the `chat:*` events it delivers (from the
//! internal `chat:started`, before the model's first token, to `chat:done` or `chat:error`),
//! so that a socket that (re)connects mid-answer can `chat:resume`: the answer to that request is queued
//! under the same lock as the deltas, so the text it carries is exactly what came before it in
//! that socket's stream, and the deltas after it are exactly the rest.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use bytestring::ByteString;
use serde_json::json;
use uuid::Uuid;

use super::packet;
use super::queue::{FrameQueue, Offer, SessionEnd};
use crate::domain::UserId;
use crate::domain::chat::ChatEvent;

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
    /// (user, conversation) → the answer being streamed.
    inflight: HashMap<(UserId, Uuid), Inflight>,
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

    /// Sends an event to every socket of the user here, except `origin`.
    /// `payload` is JSON text.
    pub fn deliver(&self, user: &UserId, name: &str, payload: &str, origin: Option<&str>) {
        if ChatEvent::is_internal_name(name) {
            track(&mut self.lock(), user, name, payload);
            return;
        }
        let frame = ByteString::from(packet::event_frame(name, payload));
        let mut inner = self.lock();
        track(&mut inner, user, name, payload);
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

    /// Queues an event for one socket only, in order with its other events.
    pub fn send_event(&self, user: &UserId, sid: &str, name: &str, payload: &str) {
        let frame = ByteString::from(packet::event_frame(name, payload));
        self.send_to(&mut self.lock(), user, sid, frame);
    }

    /// Answers `chat:resume`: the answer being streamed in the conversation so far, queued
    /// for the socket in order with the deltas (see the module documentation).
    pub fn resume(&self, user: &UserId, sid: &str, conversation: Uuid, ack_id: u64) {
        let mut inner = self.lock();
        let payload = match inner.inflight.get(&(user.clone(), conversation)) {
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

/// The fields of a `chat:*` payload that say how far an answer got.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct TurnFields<'a> {
    conversation_id: Option<Uuid>,
    message_id: Option<Uuid>,
    #[serde(borrow, default)]
    text: Option<std::borrow::Cow<'a, str>>,
}

/// Follows the answers being streamed, from the events that carry them.
fn track(inner: &mut Inner, user: &UserId, name: &str, payload: &str) {
    if !matches!(
        name,
        "chat:started" | "chat:delta" | "chat:tool" | "chat:done" | "chat:error"
    ) {
        return;
    }
    let Ok(fields) = serde_json::from_str::<TurnFields>(payload) else {
        return;
    };
    let Some(conversation) = fields.conversation_id else {
        return;
    };
    if matches!(name, "chat:done" | "chat:error") {
        inner.inflight.remove(&(user.clone(), conversation));
        return;
    }
    let Some(message_id) = fields.message_id else {
        return;
    };
    let turn = inner
        .inflight
        .entry((user.clone(), conversation))
        .or_insert_with(|| Inflight {
            message_id,
            text: String::new(),
        });
    if turn.message_id != message_id {
        // A new answer in the conversation: the last one ended unseen.
        *turn = Inflight {
            message_id,
            text: String::new(),
        };
    }
    if let Some(text) = fields.text {
        turn.text.push_str(&text);
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
        hub.deliver(&alice(), "task:deleted", r#"{"id":1}"#, Some("a1"));
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
            hub.deliver(&alice(), "e", &i.to_string(), None);
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
        let message = Uuid::now_v7();
        let delta = |text: &str| {
            json!({"conversationId": conversation, "messageId": message, "text": text}).to_string()
        };
        hub.deliver(&alice(), "chat:delta", &delta("Hel"), None);
        hub.resume(&alice(), "s", conversation, 7);
        hub.deliver(&alice(), "chat:delta", &delta("lo"), None);
        let frames: Vec<String> = (0..3).map(|_| rx.try_next().unwrap().to_string()).collect();
        assert!(frames[0].contains("Hel"));
        assert_eq!(
            frames[1],
            format!(r#"437[{{"ok":true,"inFlight":true,"messageId":"{message}","text":"Hel"}}]"#)
        );
        assert!(frames[2].contains(r#""text":"lo""#));
        hub.deliver(
            &alice(),
            "chat:done",
            &json!({"conversationId": conversation}).to_string(),
            None,
        );
        assert_eq!(hub.turns_in_flight(), 0);
        hub.resume(&alice(), "s", conversation, 8);
        let _done = rx.try_next().unwrap();
        assert_eq!(
            &*rx.try_next().unwrap(),
            r#"438[{"ok":true,"inFlight":false}]"#
        );
    }
}
