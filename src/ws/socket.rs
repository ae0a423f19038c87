//! One Socket.IO connection: the HTTP upgrade, the Engine.IO handshake, the CONNECT with the
//! token, then events in and out until either side leaves.
//!
//! Everything a connection does runs in one task: reading frames, handling events (a
//! `chat:send` waits for its message to be stored before the next event is read, so one
//! socket's messages are accepted in the order it sent them), writing the frames the hub
//! queued for it, and the heartbeat.

use std::cell::Cell;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{AggregatedMessage, AggregatedMessageStream, CloseCode, CloseReason, Session};
use bytestring::ByteString;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::time::{Instant, Sleep, sleep_until};
use uuid::Uuid;

use super::Realtime;
use super::hub::{Registration, SocketId};
use super::packet::{self, EnginePacket, Packet, PacketError, PacketKind};
use super::queue::{FrameQueue, Next, SessionEnd};
use crate::auth::AuthError;
use crate::domain::chat::{ChatEvent, ChatRequest, NoListener, TurnState};
use crate::domain::reminder::{ReminderPatch, ReminderStatus};
use crate::domain::{DomainError, ErrorCode, FieldErrors, Problem, UserId};

const WEBSOCKET_ONLY: &str = "this server offers the WebSocket transport only: connect with \
    io(url, { transports: [\"websocket\"], auth: { token } })";

/// How long a closing socket may take to accept its close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// Refuses the upgrade with the contract's JSON error body.
fn refuse(problem: Problem) -> HttpResponse {
    let status = StatusCode::from_u16(problem.code.http_status())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    HttpResponse::build(status).json(json!({ "error": problem }))
}

/// `/socket.io/`: upgrades `?EIO=4&transport=websocket`; anything else gets a JSON 400.
pub(super) async fn entry(
    req: HttpRequest,
    body: web::Payload,
    realtime: web::Data<Realtime>,
) -> HttpResponse {
    let query: Vec<(String, String)> =
        serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if param("transport") != Some("websocket") || req.method() != Method::GET {
        return refuse(
            Problem::new(ErrorCode::ValidationFailed, WEBSOCKET_ONLY)
                .with_details(json!({ "transport": "only \"websocket\" is offered" })),
        );
    }
    if param("EIO") != Some("4") {
        return refuse(
            Problem::new(
                ErrorCode::ValidationFailed,
                "only Engine.IO protocol 4 is spoken (socket.io-client v3 and v4)",
            )
            .with_details(json!({ "EIO": "must be 4" })),
        );
    }
    if realtime.closing.is_cancelled() {
        return refuse(Problem::new(
            ErrorCode::Unavailable,
            "the server is shutting down",
        ));
    }
    let (response, session, stream) = match actix_ws::handle(&req, body) {
        Ok(parts) => parts,
        Err(e) => {
            return refuse(Problem::new(
                ErrorCode::ValidationFailed,
                format!("not a WebSocket upgrade: {e}"),
            ));
        }
    };
    let max = realtime.config.max_payload_bytes;
    let stream = stream
        .max_frame_size(max)
        .aggregate_continuations()
        .max_continuation_size(max);
    let realtime = realtime.into_inner();
    actix_web::rt::spawn(async move {
        let connection = Connection {
            realtime,
            session,
            stream,
            sid: Uuid::new_v4().simple().to_string().into(),
        };
        connection.run().await;
    });
    response
}

fn new_id() -> String {
    Uuid::new_v4().simple().to_string()
}

struct Connection {
    realtime: Arc<Realtime>,
    session: Session,
    stream: AggregatedMessageStream,
    /// The Socket.IO session id, also the socket's id in the hub.
    sid: SocketId,
}

/// A signed-in socket.
struct Member {
    user: UserId,
    frames: Arc<FrameQueue>,
    /// When the session's token stops being accepted (moved on by `auth:refresh`); the
    /// socket is disconnected then. `None` for tokens that do not expire (dev tokens).
    expires_at: Cell<Option<DateTime<Utc>>>,
    _registration: Registration,
}

/// A timer for the token's expiry, armed only while the session has one.
fn expiry_timer(at: Option<DateTime<Utc>>) -> Option<Pin<Box<Sleep>>> {
    let left = (at? - Utc::now()).to_std().unwrap_or(Duration::ZERO);
    Some(Box::pin(sleep_until(Instant::now() + left)))
}

enum Flow {
    Continue,
    Close(&'static str),
}

impl Connection {
    async fn run(mut self) {
        let config = &self.realtime.config;
        let open = format!(
            "0{}",
            json!({
                "sid": new_id(),
                "upgrades": [],
                "pingInterval": config.ping_interval_secs * 1000,
                "pingTimeout": config.ping_timeout_secs * 1000,
                "maxPayload": config.max_payload_bytes,
            })
        );
        if self.session.text(open).await.is_err() {
            return;
        }
        // Boxed, like the handling of each message below: a socket's task lives as long as the
        // socket, and its size is its largest state; idle, a socket should cost little.
        let member = match Box::pin(self.handshake()).await {
            Ok(member) => member,
            Err(reason) => {
                tracing::debug!(socket = %self.sid, reason, "socket closed before connecting");
                let _ = self.session.close(None).await;
                return;
            }
        };
        tracing::info!(user = %member.user, socket = %self.sid, "socket connected");
        let reason = self.serve(member).await;
        tracing::info!(socket = %self.sid, reason, "socket disconnected");
    }

    /// Reads until the CONNECT packet of the default namespace, and signs the socket in.
    async fn handshake(&mut self) -> Result<Member, &'static str> {
        let deadline =
            Instant::now() + Duration::from_secs(self.realtime.config.connect_timeout_secs);
        loop {
            let message = tokio::select! {
                message = self.stream.recv() => message,
                () = sleep_until(deadline) => return Err("no CONNECT packet in time"),
                () = self.realtime.closing.cancelled() => return Err("the server is shutting down"),
            };
            let text = match message {
                Some(Ok(AggregatedMessage::Text(text))) => text,
                Some(Ok(AggregatedMessage::Ping(bytes))) => {
                    let _ = self.session.pong(&bytes).await;
                    continue;
                }
                Some(Ok(AggregatedMessage::Binary(_) | AggregatedMessage::Pong(_))) => continue,
                Some(Ok(AggregatedMessage::Close(_))) | None => return Err("the client left"),
                Some(Err(_)) => {
                    return Err("WebSocket protocol error (or a frame over maxPayload)");
                }
            };
            let packet = match packet::decode_engine(&text) {
                Ok(EnginePacket::Message(data)) => packet::decode_packet(data),
                Ok(EnginePacket::Ping(data)) => {
                    let _ = self.session.text(format!("3{data}")).await;
                    continue;
                }
                Ok(EnginePacket::Close) => return Err("the client left"),
                Ok(_) => continue,
                Err(_) => return Err("malformed Engine.IO packet"),
            };
            let packet = packet.map_err(|_| "malformed Socket.IO packet")?;
            if packet.kind != PacketKind::Connect {
                // Packets for a namespace not joined are dropped, as Socket.IO servers do.
                continue;
            }
            if packet.namespace != "/" {
                let frame = packet::connect_frame(
                    &packet.namespace,
                    json!({ "message": "Invalid namespace" }),
                    false,
                );
                let _ = self.session.text(frame).await;
                continue;
            }
            return self.sign_in(packet).await;
        }
    }

    async fn sign_in(&mut self, packet: Packet) -> Result<Member, &'static str> {
        let token = packet
            .data
            .as_ref()
            .and_then(|auth| auth.get("token"))
            .and_then(Value::as_str);
        let verified = match token {
            Some(token) => self.realtime.verifier.verify(token).await,
            None => Err(AuthError::Invalid("no token".into())),
        };
        let identity = match verified {
            Ok(identity) => identity,
            Err(AuthError::Invalid(reason)) => {
                tracing::debug!(socket = %self.sid, reason, "socket refused: bad token");
                return Err(self
                    .connect_error(ErrorCode::Unauthenticated.as_str())
                    .await);
            }
            Err(AuthError::Unavailable(reason)) => {
                tracing::warn!(socket = %self.sid, reason, "socket refused: cannot check tokens");
                return Err(self.connect_error(ErrorCode::Unavailable.as_str()).await);
            }
        };
        let user = identity.user;
        let since = identity.issued_at.unwrap_or_else(Utc::now);
        match self.realtime.domain.sign_in(&user, since).await {
            Ok(()) => {}
            Err(DomainError::Erased) => {
                tracing::info!(socket = %self.sid, user = %user, "socket refused: the user was erased after the token was issued");
                return Err(self
                    .connect_error(ErrorCode::Unauthenticated.as_str())
                    .await);
            }
            Err(e) => {
                tracing::warn!(socket = %self.sid, error = %e, "socket refused: sign-in failed");
                return Err(self.connect_error(ErrorCode::Unavailable.as_str()).await);
            }
        }
        let Ok((registration, frames)) = self.realtime.hub.register(&user, self.sid.clone()) else {
            tracing::info!(user = %user, "socket refused: too many sockets for this user");
            return Err(self.connect_error("too many sockets for this user").await);
        };
        let connected = packet::connect_frame("/", json!({ "sid": &*self.sid }), true);
        if self.session.text(connected).await.is_err() {
            return Err("the client left");
        }
        Ok(Member {
            user,
            frames,
            expires_at: Cell::new(identity.expires_at),
            _registration: registration,
        })
    }

    async fn connect_error(&mut self, message: &'static str) -> &'static str {
        let frame = packet::connect_frame("/", json!({ "message": message }), false);
        let _ = self.session.text(frame).await;
        message
    }

    async fn serve(&mut self, member: Member) -> &'static str {
        let config = &self.realtime.config;
        let interval = Duration::from_secs(config.ping_interval_secs);
        let ping_timeout = Duration::from_secs(config.ping_timeout_secs);
        let mut ping = tokio::time::interval_at(Instant::now() + interval, interval);
        // Armed by a ping, dropped by any packet: on the heap, and only while a pong is due.
        let mut pong_due: Option<Pin<Box<Sleep>>> = None;
        let closing = self.realtime.closing.clone();
        let mut armed_for = member.expires_at.get();
        let mut expiry = expiry_timer(armed_for);
        let reason = loop {
            tokio::select! {
                biased;
                () = closing.cancelled() => {
                    // What was queued (the end of a turn that finished as the server stopped)
                    // goes out before the DISCONNECT.
                    while let Some(frame) = member.frames.try_next() {
                        if !Box::pin(self.write(frame, &member.frames)).await {
                            break;
                        }
                    }
                    let _ = Box::pin(self.write(packet::DISCONNECT_FRAME.into(), &member.frames)).await;
                    break "the server is shutting down";
                }
                next = member.frames.next() => {
                    let frame = match next {
                        Next::Frame(frame) => frame,
                        Next::Killed => break "too slow to read its events",
                        Next::Ended(why) => {
                            Box::pin(self.end_session(why, &member.frames)).await;
                            break why.code();
                        }
                    };
                    if !Box::pin(self.write(frame, &member.frames)).await {
                        break "could not write";
                    }
                }
                () = async { if let Some(at) = expiry.as_mut() { at.await } }, if expiry.is_some() => {
                    if member.expires_at.get().is_some_and(|at| at <= Utc::now()) {
                        Box::pin(self.end_session(SessionEnd::TokenExpired, &member.frames)).await;
                        break SessionEnd::TokenExpired.code();
                    }
                    armed_for = member.expires_at.get();
                    expiry = expiry_timer(armed_for);
                }
                message = self.stream.recv() => {
                    pong_due = None;
                    match Box::pin(self.on_message(&member, message)).await {
                        Flow::Continue => {}
                        Flow::Close(reason) => break reason,
                    }
                    // `auth:refresh` moved the session's end.
                    if member.expires_at.get() != armed_for {
                        armed_for = member.expires_at.get();
                        expiry = expiry_timer(armed_for);
                    }
                }
                _ = ping.tick() => {
                    if !Box::pin(self.write(packet::PING_FRAME.into(), &member.frames)).await {
                        break "could not write";
                    }
                    if pong_due.is_none() {
                        pong_due = Some(Box::pin(sleep_until(Instant::now() + ping_timeout)));
                    }
                }
                () = async { if let Some(due) = pong_due.as_mut() { due.await } }, if pong_due.is_some() => {
                    break "ping timeout";
                }
            }
        };
        // A client that does not read may never make room for the close frame: it is offered
        // for a moment, then the socket is dropped all the same.
        let killed = member.frames.is_killed();
        let close = if killed {
            Some(CloseReason {
                code: CloseCode::Policy,
                description: Some("too slow to read events".into()),
            })
        } else {
            None
        };
        let _ = tokio::time::timeout(CLOSE_WAIT, self.session.clone().close(close)).await;
        if killed {
            return "too slow to read its events";
        }
        reason
    }

    /// Tells the client why its session ends (`session:ended {reason, message}`), then sends
    /// the Socket.IO DISCONNECT; the caller closes the WebSocket.
    async fn end_session(&mut self, why: SessionEnd, queue: &FrameQueue) {
        tracing::info!(socket = %self.sid, reason = why.code(), "ending the socket's session");
        let payload = json!({ "reason": why.code(), "message": why.message() }).to_string();
        let frame = packet::event_frame("session:ended", &payload);
        if self.write(frame.into(), queue).await {
            let _ = self.write(packet::DISCONNECT_FRAME.into(), queue).await;
        }
    }

    /// Writes a frame, giving up on a client that does not read.
    async fn write(&mut self, frame: ByteString, queue: &FrameQueue) -> bool {
        let timeout = Duration::from_secs(self.realtime.config.ping_timeout_secs);
        tokio::select! {
            written = tokio::time::timeout(timeout, self.session.text(frame)) => {
                matches!(written, Ok(Ok(())))
            }
            () = queue.killed() => false,
        }
    }

    async fn on_message(
        &mut self,
        member: &Member,
        message: Option<Result<AggregatedMessage, actix_ws::ProtocolError>>,
    ) -> Flow {
        let text = match message {
            Some(Ok(AggregatedMessage::Text(text))) => text,
            // Attachments of binary events, which are refused when announced.
            Some(Ok(AggregatedMessage::Binary(_) | AggregatedMessage::Pong(_))) => {
                return Flow::Continue;
            }
            Some(Ok(AggregatedMessage::Ping(bytes))) => {
                let _ = self.session.pong(&bytes).await;
                return Flow::Continue;
            }
            Some(Ok(AggregatedMessage::Close(_))) | None => return Flow::Close("the client left"),
            Some(Err(actix_ws::ProtocolError::Overflow)) => {
                tracing::info!(
                    user = %member.user,
                    socket = %self.sid,
                    max_payload = self.realtime.config.max_payload_bytes,
                    "socket sent a frame over maxPayload; closing it"
                );
                let _ = self
                    .session
                    .clone()
                    .close(Some(CloseReason {
                        code: CloseCode::Size,
                        description: Some("frame over maxPayload".into()),
                    }))
                    .await;
                return Flow::Close("a frame over maxPayload");
            }
            Some(Err(_)) => return Flow::Close("WebSocket protocol error"),
        };
        let data = match packet::decode_engine(&text) {
            Ok(EnginePacket::Message(data)) => data,
            Ok(EnginePacket::Ping(data)) => {
                let _ = self.write(format!("3{data}").into(), &member.frames).await;
                return Flow::Continue;
            }
            Ok(EnginePacket::Close) => return Flow::Close("the client left"),
            Ok(EnginePacket::Pong(_) | EnginePacket::Noop | EnginePacket::Upgrade) => {
                return Flow::Continue;
            }
            Err(e) => return self.malformed(member, &e.to_string()),
        };
        let packet = match packet::decode_packet(data) {
            Ok(packet) => packet,
            Err(PacketError::DuplicateKey { key, ack_id }) => {
                // Refused like a REST body with a repeated field; the socket stays.
                if let Some(id) = ack_id {
                    let errors = FieldErrors::single(&key, "is given more than once");
                    let frame = packet::ack_frame(id, invalid_fields(&errors));
                    if !Box::pin(self.write(frame.into(), &member.frames)).await {
                        return Flow::Close("could not write");
                    }
                }
                return Flow::Continue;
            }
            Err(e) => return self.malformed(member, &e.to_string()),
        };
        if packet.namespace != "/" {
            return Flow::Continue;
        }
        match packet.kind {
            PacketKind::Disconnect => Flow::Close("the client disconnected"),
            PacketKind::Event => {
                let Ok((name, args)) = packet.event() else {
                    return Flow::Continue;
                };
                // Like a request: an id, and everything the event does runs inside.
                let event = [
                    "chat:send",
                    "chat:cancel",
                    "chat:resume",
                    "auth:refresh",
                    "reminder:dismiss",
                    "reminder:snooze",
                ]
                .into_iter()
                .find(|known| *known == name)
                .unwrap_or("unknown");
                let span = tracing::info_span!(
                    "socket_event",
                    request_id = %uuid::Uuid::new_v4().simple(),
                    event,
                    socket = %self.sid
                );
                let answer = tracing::Instrument::instrument(
                    self.on_event(member, name, args.first(), packet.ack_id),
                    span,
                )
                .await;
                if let (Some(id), Some(answer)) = (packet.ack_id, answer) {
                    let frame = packet::ack_frame(id, answer);
                    if !Box::pin(self.write(frame.into(), &member.frames)).await {
                        return Flow::Close("could not write");
                    }
                }
                Flow::Continue
            }
            PacketKind::BinaryEvent => {
                if let Some(id) = packet.ack_id {
                    let answer = failure(
                        ErrorCode::ValidationFailed,
                        "binary payloads are not accepted; send JSON",
                    );
                    let _ = self
                        .write(packet::ack_frame(id, answer).into(), &member.frames)
                        .await;
                }
                Flow::Continue
            }
            // Acks of server events (none ask for one), a second CONNECT: nothing to do.
            _ => Flow::Continue,
        }
    }

    fn malformed(&self, member: &Member, error: &str) -> Flow {
        tracing::info!(user = %member.user, socket = %self.sid, error, "malformed packet; closing the socket");
        Flow::Close("malformed packet")
    }

    /// Handles an event; returns the ack payload, or None when the ack is queued elsewhere.
    async fn on_event(
        &self,
        member: &Member,
        name: &str,
        payload: Option<&Value>,
        ack_id: Option<u64>,
    ) -> Option<Value> {
        let payload = payload.unwrap_or(&Value::Null);
        match name {
            "chat:send" => Some(self.chat_send(member, payload).await),
            "chat:cancel" => Some(match parse::<ConversationPayload>(payload) {
                Ok(p) => {
                    self.realtime
                        .domain
                        .cancel_turn(&member.user, p.conversation_id);
                    json!({ "ok": true })
                }
                Err(e) => e,
            }),
            "auth:refresh" => Some(match parse::<RefreshPayload>(payload) {
                Ok(p) => self.refresh(member, &p.token).await,
                Err(e) => e,
            }),
            "chat:resume" => match parse::<ConversationPayload>(payload) {
                Ok(p) => {
                    if let Some(id) = ack_id {
                        self.realtime
                            .hub
                            .resume(&member.user, &self.sid, p.conversation_id, id);
                    }
                    None
                }
                Err(e) => Some(e),
            },
            "reminder:dismiss" => Some(match parse::<DismissPayload>(payload) {
                Ok(p) => {
                    let patch = ReminderPatch::status(ReminderStatus::Dismissed);
                    self.update_reminder(member, p.id, patch).await
                }
                Err(e) => e,
            }),
            "reminder:snooze" => Some(match parse::<SnoozePayload>(payload) {
                Ok(p) => {
                    self.update_reminder(member, p.id, ReminderPatch::snooze(p.until))
                        .await
                }
                Err(e) => e,
            }),
            other => {
                tracing::debug!(socket = %self.sid, event = other, "unknown event");
                Some(failure(
                    ErrorCode::UnknownEvent,
                    &format!(
                        "unknown event {other:?}; see the API for chat:send, chat:cancel, \
                         chat:resume, auth:refresh, reminder:dismiss and reminder:snooze"
                    ),
                ))
            }
        }
    }

    /// `reminder:dismiss` / `reminder:snooze`: the user's other devices hear of it as
    /// `reminder:updated`; this one has the reminder in its ack.
    async fn update_reminder(&self, member: &Member, id: Uuid, patch: ReminderPatch) -> Value {
        match self
            .realtime
            .domain
            .update_reminder(&member.user, id, patch, Some(self.sid.clone()))
            .await
        {
            Ok(reminder) => json!({ "ok": true, "reminder": reminder }),
            Err(e) => domain_failure(&e),
        }
    }

    /// `auth:refresh {token}`: a fresh token of the same user moves the session's end to the
    /// new token's expiry.
    async fn refresh(&self, member: &Member, token: &str) -> Value {
        match self.realtime.verifier.verify(token).await {
            Ok(identity) if identity.user == member.user => {
                member.expires_at.set(identity.expires_at);
                json!({ "ok": true, "expiresAt": identity.expires_at })
            }
            Ok(_) => failure(ErrorCode::Unauthenticated, "the token is for another user"),
            Err(AuthError::Invalid(reason)) => {
                tracing::debug!(socket = %self.sid, reason, "auth:refresh refused");
                failure(ErrorCode::Unauthenticated, "the token is not valid")
            }
            Err(AuthError::Unavailable(_)) => failure(
                ErrorCode::Unavailable,
                "tokens cannot be checked right now; try again",
            ),
        }
    }

    async fn chat_send(&self, member: &Member, payload: &Value) -> Value {
        let realtime = &self.realtime;
        if realtime.closing.is_cancelled() {
            return failure(
                ErrorCode::Unavailable,
                "the server is shutting down; send again later",
            );
        }
        let send = match parse::<SendPayload>(payload) {
            Ok(send) => send,
            Err(e) => return e,
        };
        let request = ChatRequest {
            conversation_id: send.conversation_id,
            client_message_id: Some(send.client_message_id),
            text: send.text,
            origin: Some(self.sid.clone()),
        };
        // The turn's events reach this socket (and the user's others) through the hub.
        match realtime
            .domain
            .send(&member.user, request, Arc::new(NoListener))
            .await
        {
            Ok(sent) => {
                let message = &sent.message;
                // A retry of a turn that finished: this socket (which may have missed the
                // end) gets the answer again, after the ack.
                if let TurnState::Answered(answer) = sent.turn {
                    let done = ChatEvent::Done {
                        conversation_id: message.conversation_id,
                        message: answer,
                    };
                    realtime.hub.send_event(
                        &member.user,
                        &self.sid,
                        done.name(),
                        done.payload().get(),
                    );
                }
                json!({
                    "ok": true,
                    "conversationId": message.conversation_id,
                    "messageId": message.id,
                })
            }
            Err(DomainError::Erased) => {
                // The erasure's own notice may still be on its way from another instance.
                member.frames.end(SessionEnd::UserErased);
                domain_failure(&DomainError::Erased)
            }
            Err(e) => domain_failure(&e),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SendPayload {
    #[serde(default)]
    conversation_id: Option<Uuid>,
    client_message_id: String,
    text: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DismissPayload {
    id: Uuid,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SnoozePayload {
    id: Uuid,
    until: DateTime<Utc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshPayload {
    token: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ConversationPayload {
    conversation_id: Uuid,
}

/// Reads an event payload; a mismatch is a `validation_failed` ack naming the field.
fn parse<T: serde::de::DeserializeOwned>(payload: &Value) -> Result<T, Value> {
    if !payload.is_object() {
        return Err(failure(
            ErrorCode::ValidationFailed,
            "the payload must be a JSON object",
        ));
    }
    serde_path_to_error::deserialize(payload).map_err(|e| {
        invalid_fields(&FieldErrors::from_serde(
            &e.path().to_string(),
            &e.inner().to_string(),
        ))
    })
}

/// A refusal ack: `{ok: false, error: {code, message, details?}}`.
fn refusal(problem: &Problem) -> Value {
    json!({ "ok": false, "error": problem })
}

fn failure(code: ErrorCode, message: &str) -> Value {
    refusal(&Problem::new(code, message))
}

/// `validation_failed`, with the fields at fault as details (like a REST 400).
fn invalid_fields(errors: &FieldErrors) -> Value {
    refusal(&DomainError::Validation(errors.clone()).problem())
}

fn domain_failure(error: &DomainError) -> Value {
    let mut ack = refusal(&error.problem());
    // Told at the error's top level too, as acks did before `details` carried it.
    if let DomainError::RateLimited { retry_after_secs } = error {
        ack["error"]["retryAfter"] = json!(retry_after_secs);
    }
    ack
}
