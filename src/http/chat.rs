//! `POST /v1/chat`: one chat turn, answered as JSON or, with `Accept: text/event-stream`, as
//! Server-Sent Events named like the Socket.IO events (`chat:message`, `chat:delta`,
//! `chat:tool`, `chat:done`, `chat:error`).
//!
//! Either way the turn runs in the background: a client that hangs up does not cut it
//! half-way; its answer is stored and can be read from the conversation's messages.

use actix_web::post;
use std::sync::Arc;

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::AppState;
use super::auth::AuthUser;
use super::error::{ApiErrors, ApiResult};
use super::extract::ApiJson;
use crate::domain::DomainError;
use crate::domain::chat::{ChatEvent, ChatListener, ChatRequest, TurnState};
use crate::domain::conversation::Message;

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(chat);
}

/// A turn answered as JSON.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ChatReply)]
struct Reply {
    conversation_id: Uuid,
    user_message: Message,
    assistant_message: Message,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(as = ChatRequest)]
struct ChatBody {
    conversation_id: Option<Uuid>,
    client_message_id: Option<String>,
    text: String,
}

fn wants_event_stream(req: &HttpRequest) -> bool {
    req.headers()
        .get_all(header::ACCEPT)
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/event-stream"))
}

/// Sends a turn's events into a channel; the SSE response drains it.
struct Channel(mpsc::UnboundedSender<Bytes>);

impl ChatListener for Channel {
    fn event(&self, event: &ChatEvent, payload: &RawValue) {
        if event.is_internal() {
            return;
        }
        // The client went away: the turn goes on and is stored all the same.
        let _ = self.0.send(sse(event.name(), payload));
    }
}

fn sse(name: &str, payload: &RawValue) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {}\n\n", payload.get()))
}

/// One chat turn. With `Accept: text/event-stream` the turn streams as Server-Sent Events named like the Socket.IO events (`chat:message`, `chat:delta`, `chat:tool`, then `chat:done` or `chat:error`; data: the Socket.IO payloads)
#[utoipa::path(
    tag = "chat",
    request_body = ChatBody,
    responses((status = 200, description = "The stored question and answer; or, with Accept: text/event-stream, the turn as events", body = Reply, content_type = "application/json"), ApiErrors),
    security(("bearer" = []))
)]
#[post("/chat")]
async fn chat(
    req: HttpRequest,
    user: AuthUser,
    state: web::Data<AppState>,
    ApiJson(body): ApiJson<ChatBody>,
) -> ApiResult<HttpResponse> {
    let request = ChatRequest {
        conversation_id: body.conversation_id,
        client_message_id: body.client_message_id,
        text: body.text,
        origin: None,
    };
    let domain = &state.domain;
    let user = user.0;
    if !wants_event_stream(&req) {
        let turn = domain.chat(&user, request).await?;
        return Ok(HttpResponse::Ok().json(Reply {
            conversation_id: turn.conversation_id,
            user_message: turn.user_message,
            assistant_message: turn.assistant_message,
        }));
    }
    // Refusals (bad input, unknown conversation, quota, conflict) are plain HTTP errors; once
    // the message is stored, everything else is an event.
    let (sender, receiver) = mpsc::unbounded_channel();
    let sent = domain
        .send(&user, request, Arc::new(Channel(sender.clone())))
        .await?;
    match sent.turn {
        // Its events, ending in one terminal event, are on their way.
        TurnState::Scheduled { .. } => {}
        // A retry of a finished turn: the answer again (the message was announced when it
        // was first stored).
        TurnState::Answered(message) => {
            let done = ChatEvent::Done {
                conversation_id: message.conversation_id,
                message,
            };
            let _ = sender.send(sse(done.name(), &done.payload()));
        }
        TurnState::Running => {
            return Err(DomainError::Conflict(
                "a turn for this message is already running; its answer will be stored".into(),
            )
            .into());
        }
    }
    drop(sender);
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        let frame = receiver.recv().await?;
        Some((Ok::<_, actix_web::Error>(frame), receiver))
    });
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/event-stream"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(stream))
}
