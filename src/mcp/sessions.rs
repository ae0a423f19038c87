//! MCP sessions (`Mcp-Session-Id`), bounded: at most so many open on the server and per user,
//! none older than a lifetime, none idle longer than a timeout. Each session belongs to the
//! user whose token opened it; rmcp's in-memory manager keeps the session itself.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures_util::Stream;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::streamable_http_server::session::local::{
    LocalSessionManager, LocalSessionManagerError,
};
use rmcp::transport::streamable_http_server::session::{
    ServerSseMessage, SessionId, SessionManager,
};
use tokio_util::sync::CancellationToken;

use crate::domain::UserId;

#[derive(Debug, Clone)]
pub struct SessionLimits {
    pub max_sessions: usize,
    pub max_per_user: usize,
    pub idle: Duration,
    pub lifetime: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum SessionsError {
    /// A session was about to open past `max_sessions` without a reservation (the gate
    /// reserves before every `initialize`, so this is the last line only).
    #[error("too many MCP sessions are open")]
    Full,
    #[error(transparent)]
    Local(#[from] LocalSessionManagerError),
}

/// Why a new session cannot open now.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    ServerFull,
    UserFull,
}

struct Open {
    owner: UserId,
    opened: Instant,
    used: Instant,
}

/// Whose a session is, as one request sees it.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    Own,
    Foreign,
    /// Not open: never opened, closed, or past its limits.
    Unknown,
}

#[derive(Default)]
struct Registry {
    open: HashMap<SessionId, Open>,
    /// Sessions open or being opened, per user.
    per_user: HashMap<UserId, usize>,
    /// Sessions being opened (an `initialize` in flight).
    reserved: usize,
}

impl Registry {
    fn release(&mut self, user: &UserId) {
        if let Some(count) = self.per_user.get_mut(user) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.per_user.remove(user);
            }
        }
    }
}

pub struct McpSessions {
    local: LocalSessionManager,
    limits: SessionLimits,
    registry: Mutex<Registry>,
}

impl McpSessions {
    pub fn new(limits: SessionLimits) -> Self {
        let mut local = LocalSessionManager::default();
        // The sweep closes idle sessions, and forgets them with it; rmcp's own idle timeout
        // (which would leave them counted) is only a backstop.
        local.session_config.keep_alive = Some(limits.idle + Duration::from_secs(120));
        Self {
            local,
            limits,
            registry: Mutex::default(),
        }
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        // A panic elsewhere leaves counts that are still counts.
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Holds a place for a session `user` is opening; dropped unused, it frees the place.
    pub fn reserve(self: &Arc<Self>, user: &UserId) -> Result<Reservation, Refusal> {
        let mut registry = self.registry();
        // Sessions past their limits free their places now, not at the next sweep.
        let expired = self.take_expired(&mut registry);
        if !expired.is_empty() {
            let sessions = self.clone();
            tokio::spawn(async move { sessions.close_expired(expired).await });
        }
        if registry.open.len() + registry.reserved >= self.limits.max_sessions {
            return Err(Refusal::ServerFull);
        }
        let count = registry.per_user.entry(user.clone()).or_default();
        if *count >= self.limits.max_per_user {
            return Err(Refusal::UserFull);
        }
        *count += 1;
        registry.reserved += 1;
        Ok(Reservation {
            sessions: self.clone(),
            user: user.clone(),
            pending: true,
        })
    }

    /// Whether `user` may use the session; using it keeps it from going idle.
    pub fn claim(&self, id: &str, user: &UserId) -> Claim {
        match self.registry().open.get_mut(id) {
            // Past its limits it is as good as closed (the sweep will close it), and using
            // it must not make it look fresh again.
            Some(open) if self.past_limits(open) => Claim::Unknown,
            Some(open) if open.owner == *user => {
                open.used = Instant::now();
                Claim::Own
            }
            Some(_) => Claim::Foreign,
            None => Claim::Unknown,
        }
    }

    pub fn len(&self) -> usize {
        self.registry().open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn expired(&self, id: &str) -> bool {
        self.registry()
            .open
            .get(id)
            .is_some_and(|open| self.past_limits(open))
    }

    fn past_limits(&self, open: &Open) -> bool {
        open.opened.elapsed() >= self.limits.lifetime || open.used.elapsed() >= self.limits.idle
    }

    fn forget(&self, id: &SessionId) {
        let mut registry = self.registry();
        if let Some(open) = registry.open.remove(id) {
            registry.release(&open.owner);
        }
    }

    /// Closes sessions past their lifetime or idle too long, and forgets those the
    /// transport ended on its own.
    pub async fn sweep(self: Arc<Self>, stop: CancellationToken) {
        let every = (self.limits.lifetime.min(self.limits.idle) / 4)
            .clamp(Duration::from_secs(1), Duration::from_secs(60));
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let expired = self.take_expired(&mut self.registry());
            self.close_expired(expired).await;
            let open: Vec<SessionId> = self.registry().open.keys().cloned().collect();
            for id in open {
                if !self.local.sessions.read().await.contains_key(&id) {
                    self.forget(&id);
                }
            }
        }
    }

    /// Removes the sessions past their limits from the registry, freeing their places.
    fn take_expired(&self, registry: &mut Registry) -> Vec<SessionId> {
        let expired: Vec<SessionId> = registry
            .open
            .iter()
            .filter(|(_, open)| self.past_limits(open))
            .map(|(id, _)| id.clone())
            .collect();
        for id in &expired {
            if let Some(open) = registry.open.remove(id) {
                registry.release(&open.owner);
            }
        }
        expired
    }

    /// Ends, in the transport, sessions already taken from the registry.
    async fn close_expired(&self, expired: Vec<SessionId>) {
        for id in expired {
            tracing::debug!("MCP session idle or past its lifetime: closed");
            if let Err(e) = self.local.close_session(&id).await {
                tracing::warn!(error = %e, "closing an expired MCP session");
            }
        }
    }
}

/// A place held for one session being opened.
pub struct Reservation {
    sessions: Arc<McpSessions>,
    user: UserId,
    pending: bool,
}

impl Reservation {
    /// The session opened: it now counts as open, owned by the reserving user.
    pub fn opened(mut self, id: SessionId) {
        self.pending = false;
        let mut registry = self.sessions.registry();
        registry.reserved = registry.reserved.saturating_sub(1);
        let owner = self.user.clone();
        let now = Instant::now();
        if let Some(previous) = registry.open.insert(
            id,
            Open {
                owner,
                opened: now,
                used: now,
            },
        ) {
            // The same id twice cannot happen (ids are random); count it once anyway.
            registry.release(&previous.owner);
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.pending {
            let mut registry = self.sessions.registry();
            registry.reserved = registry.reserved.saturating_sub(1);
            registry.release(&self.user);
        }
    }
}

impl SessionManager for McpSessions {
    type Error = SessionsError;
    type Transport = <LocalSessionManager as SessionManager>::Transport;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        if self.local.sessions.read().await.len() >= self.limits.max_sessions {
            return Err(SessionsError::Full);
        }
        Ok(self.local.create_session().await?)
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        Ok(self.local.initialize_session(id, message).await?)
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        if self.expired(id) {
            self.close_session(id).await?;
            return Ok(false);
        }
        Ok(self.local.has_session(id).await?)
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        self.forget(id);
        Ok(self.local.close_session(id).await?)
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        Ok(self.local.create_stream(id, message).await?)
    }

    async fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), Self::Error> {
        Ok(self.local.accept_message(id, message).await?)
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        Ok(self.local.create_standalone_stream(id).await?)
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        Ok(self.local.resume(id, last_event_id).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions(max_sessions: usize, max_per_user: usize) -> Arc<McpSessions> {
        Arc::new(McpSessions::new(SessionLimits {
            max_sessions,
            max_per_user,
            idle: Duration::from_secs(60),
            lifetime: Duration::from_secs(60),
        }))
    }

    fn user(name: &str) -> UserId {
        UserId::parse(name).unwrap_or_else(|e| unreachable!("{e}"))
    }

    #[test]
    fn places_are_bounded_per_user_and_in_all_and_freed_when_unused() {
        let sessions = sessions(3, 2);
        let (alice, bob) = (user("alice"), user("bob"));
        let first = sessions.reserve(&alice).ok();
        let second = sessions.reserve(&alice).ok();
        assert!(first.is_some() && second.is_some());
        assert_eq!(sessions.reserve(&alice).err(), Some(Refusal::UserFull));
        let third = sessions.reserve(&bob).ok();
        assert!(third.is_some());
        assert_eq!(sessions.reserve(&bob).err(), Some(Refusal::ServerFull));
        drop(second);
        assert!(
            sessions.reserve(&alice).is_ok(),
            "a dropped reservation frees its place"
        );
        if let Some(first) = first {
            first.opened("s1".into());
        }
        assert_eq!(sessions.claim("s1", &alice), Claim::Own);
        assert_eq!(sessions.claim("s1", &bob), Claim::Foreign);
        assert_eq!(sessions.len(), 1);
        sessions.forget(&"s1".into());
        assert_eq!(sessions.claim("s1", &alice), Claim::Unknown);
        assert!(sessions.reserve(&alice).is_ok());
    }
}
