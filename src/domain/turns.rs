//! Turn scheduling. Turns in one conversation run one at a time, in the order their messages
//! were accepted (a FIFO ticket lock per conversation); the running turn of a conversation can
//! be cancelled; a message has at most one turn queued or running; shutdown waits for the
//! turns in flight, then cancels what is left (a cancelled turn stores what it streamed).
//!
//! The order holds within one process. Behind a load balancer two instances may run turns of
//! the same conversation side by side, each in its own order.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use super::values::UserId;

pub struct Turns {
    state: Mutex<State>,
    tracker: TaskTracker,
    /// Parent of every turn's token: cancelled when the shutdown grace period is over.
    stop: CancellationToken,
    /// The runtime turns run on: the one the domain was made in (the server's main runtime,
    /// not the HTTP worker that happened to receive the message, which stops first at
    /// shutdown).
    runtime: Option<tokio::runtime::Handle>,
}

impl Default for Turns {
    fn default() -> Self {
        Self {
            state: Mutex::default(),
            tracker: TaskTracker::new(),
            stop: CancellationToken::new(),
            runtime: tokio::runtime::Handle::try_current().ok(),
        }
    }
}

#[derive(Default)]
struct State {
    lanes: HashMap<Uuid, Lane>,
    /// conversation → (owner, token) of the turn running in it.
    running: HashMap<Uuid, (UserId, CancellationToken)>,
    /// User messages with a turn queued or running, and whose they are.
    pending: HashMap<Uuid, UserId>,
    /// Queued turns of an erased user: they are not to run when their turn comes.
    withdrawn: HashSet<Uuid>,
    closed: bool,
}

struct Lane {
    next: u64,
    serving: watch::Sender<u64>,
    /// Tickets that finished (or were dropped) before their turn came.
    done: BTreeSet<u64>,
}

/// Why a turn could not be scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// A turn for this message is already queued or running.
    Pending,
    /// The server is shutting down.
    Closed,
}

impl Turns {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the next place in the conversation's line for this user message.
    pub(crate) fn reserve(
        self: &Arc<Self>,
        user: &UserId,
        conversation: Uuid,
        message: Uuid,
    ) -> Result<Ticket, Refused> {
        let mut state = self.lock();
        if state.closed {
            return Err(Refused::Closed);
        }
        if state.pending.contains_key(&message) {
            return Err(Refused::Pending);
        }
        state.pending.insert(message, user.clone());
        let lane = state.lanes.entry(conversation).or_insert_with(|| Lane {
            next: 0,
            serving: watch::Sender::new(0),
            done: BTreeSet::new(),
        });
        let number = lane.next;
        lane.next += 1;
        Ok(Ticket {
            turns: self.clone(),
            user: user.clone(),
            conversation,
            message,
            number,
            serving: lane.serving.subscribe(),
            running: false,
        })
    }

    /// Runs a future as a turn in flight: shutdown waits for it.
    pub(crate) fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let future = self.tracker.track_future(future);
        match &self.runtime {
            Some(runtime) => drop(runtime.spawn(future)),
            None => drop(tokio::spawn(future)),
        }
    }

    /// Cancels the turn running in the user's conversation; false when none runs here.
    pub fn cancel(&self, user: &UserId, conversation: Uuid) -> bool {
        let state = self.lock();
        match state.running.get(&conversation) {
            Some((owner, token)) if owner == user => {
                token.cancel();
                true
            }
            _ => false,
        }
    }

    /// Cancels every turn of the user (erased): the running ones stop, the queued ones will
    /// not run. Returns how many turns that was.
    pub fn cancel_user(&self, user: &UserId) -> usize {
        let mut state = self.lock();
        let mut count = 0;
        for (owner, token) in state.running.values() {
            if owner == user {
                token.cancel();
                count += 1;
            }
        }
        let queued: Vec<Uuid> = state
            .pending
            .iter()
            .filter(|(_, owner)| *owner == user)
            .map(|(message, _)| *message)
            .collect();
        count = count.max(queued.len());
        state.withdrawn.extend(queued);
        count
    }

    /// Whether shutdown began: no turn is scheduled any more.
    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Turns queued or running.
    pub fn in_flight(&self) -> usize {
        self.lock().pending.len()
    }

    /// Refuses new turns, waits up to `grace` for those in flight, then cancels the rest and
    /// waits up to `store_grace` for them to store what they streamed. Returns how many were
    /// cancelled.
    pub async fn shutdown(&self, grace: Duration, store_grace: Duration) -> usize {
        self.lock().closed = true;
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_ok()
        {
            return 0;
        }
        let left = self.in_flight();
        tracing::warn!(
            turns = left,
            "turns still running after the grace period; cancelling them"
        );
        self.stop.cancel();
        if tokio::time::timeout(store_grace, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("cancelled turns did not finish storing in time");
        }
        left
    }
}

/// A place in a conversation's line. Dropping it (after the turn, or instead of it) lets the
/// next turn go.
pub(crate) struct Ticket {
    turns: Arc<Turns>,
    user: UserId,
    conversation: Uuid,
    message: Uuid,
    number: u64,
    serving: watch::Receiver<u64>,
    running: bool,
}

impl Ticket {
    /// Waits until the turns before this one are done, then marks this one running and
    /// returns its cancellation token.
    pub(crate) async fn start(&mut self) -> CancellationToken {
        let number = self.number;
        // The sender lives in the lane as long as a ticket of it does: an error cannot happen,
        // and would only mean "go".
        let _ = self.serving.wait_for(|&serving| serving >= number).await;
        let token = self.turns.stop.child_token();
        self.turns
            .lock()
            .running
            .insert(self.conversation, (self.user.clone(), token.clone()));
        self.running = true;
        token
    }

    /// The user was erased while this turn waited: it is not to run.
    pub(crate) fn is_withdrawn(&self) -> bool {
        self.turns.lock().withdrawn.contains(&self.message)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut state = self.turns.lock();
        state.pending.remove(&self.message);
        state.withdrawn.remove(&self.message);
        if self.running {
            state.running.remove(&self.conversation);
        }
        let Some(lane) = state.lanes.get_mut(&self.conversation) else {
            return;
        };
        lane.done.insert(self.number);
        let mut serving = *lane.serving.borrow();
        while lane.done.remove(&serving) {
            serving += 1;
        }
        lane.serving.send_replace(serving);
        if serving == lane.next {
            state.lanes.remove(&self.conversation);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> UserId {
        UserId::parse("alice").unwrap()
    }

    #[tokio::test]
    async fn turns_of_a_conversation_run_in_order() {
        let turns = Arc::new(Turns::default());
        let conversation = Uuid::now_v7();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut handles = Vec::new();
        for i in 0..5 {
            let mut ticket = turns
                .reserve(&user(), conversation, Uuid::now_v7())
                .unwrap();
            let order = order.clone();
            handles.push(tokio::spawn(async move {
                // Later tickets try to start first.
                tokio::time::sleep(Duration::from_millis(20 - 4 * i)).await;
                ticket.start().await;
                order.lock().unwrap().push(i);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3, 4]);
        assert!(
            turns.lock().lanes.is_empty(),
            "the lane is removed when idle"
        );
    }

    #[tokio::test]
    async fn a_dropped_ticket_lets_the_next_go() {
        let turns = Arc::new(Turns::default());
        let conversation = Uuid::now_v7();
        let first = turns
            .reserve(&user(), conversation, Uuid::now_v7())
            .unwrap();
        let second = turns
            .reserve(&user(), conversation, Uuid::now_v7())
            .unwrap();
        let mut third = turns
            .reserve(&user(), conversation, Uuid::now_v7())
            .unwrap();
        drop(second);
        drop(first);
        tokio::time::timeout(Duration::from_secs(1), third.start())
            .await
            .expect("the third ticket starts");
    }

    #[tokio::test]
    async fn one_turn_per_message_and_cancel_by_owner_only() {
        let turns = Arc::new(Turns::default());
        let conversation = Uuid::now_v7();
        let message = Uuid::now_v7();
        let mut ticket = turns.reserve(&user(), conversation, message).unwrap();
        assert_eq!(
            turns.reserve(&user(), conversation, message).err(),
            Some(Refused::Pending)
        );
        let token = ticket.start().await;
        assert!(!turns.cancel(&UserId::parse("bob").unwrap(), conversation));
        assert!(!token.is_cancelled());
        assert!(turns.cancel(&user(), conversation));
        assert!(token.is_cancelled());
        drop(ticket);
        assert!(!turns.cancel(&user(), conversation));
        assert!(turns.reserve(&user(), conversation, message).is_ok());
    }

    #[tokio::test]
    async fn shutdown_cancels_turns_that_outlive_the_grace() {
        let turns = Arc::new(Turns::default());
        let mut ticket = turns
            .reserve(&user(), Uuid::now_v7(), Uuid::now_v7())
            .unwrap();
        turns.spawn(async move {
            let token = ticket.start().await;
            token.cancelled().await;
        });
        let cancelled = turns
            .shutdown(Duration::from_millis(50), Duration::from_secs(1))
            .await;
        assert_eq!(cancelled, 1);
        assert_eq!(
            turns.reserve(&user(), Uuid::now_v7(), Uuid::now_v7()).err(),
            Some(Refused::Closed)
        );
    }
}
