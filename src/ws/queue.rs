//! A socket's outbound queue: the frames the hub delivered, waiting for the socket's task to
//! write them.
//!
//! Bounded, and allocated only as frames arrive: an idle socket's queue is one small
//! allocation (a channel would hold a preallocated block of slots and its own padded state
//! for every socket, a kilobyte and a half that 10,000 idle sockets pay for nothing). The hub
//! is the only producer and the socket's task the only consumer, so one lock and one waker
//! are all it needs. The queue also carries the hub's verdict on a socket too slow to drain it.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Mutex, MutexGuard};
use std::task::{Poll, Waker};

use bytestring::ByteString;

pub struct FrameQueue {
    state: Mutex<State>,
    capacity: usize,
}

#[derive(Default)]
struct State {
    frames: VecDeque<ByteString>,
    /// The socket's task, when it waits for a frame or for its dismissal.
    waker: Option<Waker>,
    /// The queue overflowed: the socket is to be disconnected.
    killed: bool,
    /// The session was ended (the user was erased): after the frames queued before, the
    /// socket is told why and disconnected.
    ended: Option<SessionEnd>,
}

/// Why the server ends a socket's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    /// The user was erased (`DELETE /v1/me`, the identity provider's `user.deleted`).
    UserErased,
    /// The socket's token expired and no fresh one came (`auth:refresh`).
    TokenExpired,
}

impl SessionEnd {
    /// The `reason` of the `session:ended` event.
    pub fn code(self) -> &'static str {
        match self {
            Self::UserErased => "user_erased",
            Self::TokenExpired => "token_expired",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Self::UserErased => "this user was erased",
            Self::TokenExpired => {
                "the session token expired; connect again with a fresh token (or send auth:refresh before it expires)"
            }
        }
    }
}

/// What became of a frame offered to the queue.
#[derive(Debug, PartialEq, Eq)]
pub enum Offer {
    Queued,
    /// The queue was full: the frame was dropped and the socket is now killed.
    Overflowed,
    /// The socket was killed before.
    Killed,
}

/// What the socket's task gets next.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    Frame(ByteString),
    Killed,
    /// Every frame queued before was taken; the session ends.
    Ended(SessionEnd),
}

impl FrameQueue {
    pub fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::default(),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a frame without waiting; a full queue kills the socket instead.
    pub fn offer(&self, frame: ByteString) -> Offer {
        let mut state = self.lock();
        if state.killed || state.ended.is_some() {
            return Offer::Killed;
        }
        let offer = if state.frames.len() >= self.capacity {
            state.killed = true;
            state.frames = VecDeque::new();
            Offer::Overflowed
        } else {
            state.frames.push_back(frame);
            Offer::Queued
        };
        if let Some(waker) = state.waker.take() {
            waker.wake();
        }
        offer
    }

    /// The next frame, in order, or the socket's dismissal (which comes first).
    pub async fn next(&self) -> Next {
        poll_fn(|cx| {
            let mut state = self.lock();
            if state.killed {
                return Poll::Ready(Next::Killed);
            }
            match state.frames.pop_front() {
                Some(frame) => {
                    // A burst (a long answer) leaves no large buffer behind on a quiet socket.
                    if state.frames.is_empty() && state.frames.capacity() > 64 {
                        state.frames = VecDeque::new();
                    }
                    Poll::Ready(Next::Frame(frame))
                }
                None => {
                    if let Some(end) = state.ended {
                        return Poll::Ready(Next::Ended(end));
                    }
                    state.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await
    }

    /// Ends the session: the frames queued so far still go out, later ones are dropped.
    pub fn end(&self, why: SessionEnd) {
        let mut state = self.lock();
        state.ended.get_or_insert(why);
        if let Some(waker) = state.waker.take() {
            waker.wake();
        }
    }

    /// Resolves when the socket is killed.
    pub async fn killed(&self) {
        poll_fn(|cx| {
            let mut state = self.lock();
            if state.killed {
                Poll::Ready(())
            } else {
                state.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }

    pub fn is_killed(&self) -> bool {
        self.lock().killed
    }

    /// A frame already queued, without waiting.
    pub fn try_next(&self) -> Option<ByteString> {
        let mut state = self.lock();
        if state.killed {
            return None;
        }
        state.frames.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    fn frame(text: &str) -> ByteString {
        ByteString::from(text.to_owned())
    }

    #[tokio::test]
    async fn frames_come_out_in_order() {
        let queue = FrameQueue::new(4);
        assert_eq!(queue.offer(frame("a")), Offer::Queued);
        assert_eq!(queue.offer(frame("b")), Offer::Queued);
        assert_eq!(queue.next().await, Next::Frame(frame("a")));
        assert_eq!(queue.try_next(), Some(frame("b")));
        assert_eq!(queue.try_next(), None);
    }

    #[tokio::test]
    async fn a_waiting_consumer_is_woken_by_a_frame() {
        let queue = Arc::new(FrameQueue::new(4));
        let consumer = tokio::spawn({
            let queue = queue.clone();
            async move { queue.next().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!consumer.is_finished());
        queue.offer(frame("hello"));
        let next = tokio::time::timeout(Duration::from_secs(5), consumer).await;
        assert_eq!(
            next.ok().and_then(Result::ok),
            Some(Next::Frame(frame("hello")))
        );
    }

    #[tokio::test]
    async fn overflow_kills_the_socket_and_drops_its_frames() {
        let queue = Arc::new(FrameQueue::new(2));
        let dismissed = tokio::spawn({
            let queue = queue.clone();
            async move { queue.killed().await }
        });
        assert_eq!(queue.offer(frame("a")), Offer::Queued);
        assert_eq!(queue.offer(frame("b")), Offer::Queued);
        assert!(!queue.is_killed());
        assert_eq!(queue.offer(frame("c")), Offer::Overflowed);
        assert!(queue.is_killed());
        assert_eq!(queue.offer(frame("d")), Offer::Killed);
        assert_eq!(queue.next().await, Next::Killed);
        assert_eq!(queue.try_next(), None);
        let woken = tokio::time::timeout(Duration::from_secs(5), dismissed).await;
        assert!(matches!(woken, Ok(Ok(()))));
    }

    #[tokio::test]
    async fn an_ended_session_delivers_what_came_before_then_ends() {
        let queue = Arc::new(FrameQueue::new(4));
        assert_eq!(queue.offer(frame("a")), Offer::Queued);
        queue.end(SessionEnd::UserErased);
        assert_eq!(queue.offer(frame("b")), Offer::Killed);
        assert_eq!(queue.next().await, Next::Frame(frame("a")));
        assert_eq!(queue.next().await, Next::Ended(SessionEnd::UserErased));
        // A waiting consumer is woken by the end.
        let waiting = Arc::new(FrameQueue::new(4));
        let consumer = tokio::spawn({
            let waiting = waiting.clone();
            async move { waiting.next().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        waiting.end(SessionEnd::TokenExpired);
        let next = tokio::time::timeout(Duration::from_secs(5), consumer).await;
        assert_eq!(
            next.ok().and_then(Result::ok),
            Some(Next::Ended(SessionEnd::TokenExpired))
        );
    }
}
