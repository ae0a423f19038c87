//! Cross-cutting request handling: the request id, JSON bodies on every error (including the
//! router's own 404/405), a log line per failed request, and the guard on request bodies.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::StatusCode;
use actix_web::http::header::{
    CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, HeaderName, HeaderValue, TRANSFER_ENCODING,
    UPGRADE,
};
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use actix_web::{Error, HttpMessage, HttpResponse, ResponseError};
use futures_util::Stream;

use super::error::{ApiError, error_body};
use crate::domain::{ErrorCode, Problem};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request's id, echoed from the client's `x-request-id` when it sent a sane one.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

fn client_request_id(value: &HeaderValue) -> Option<String> {
    let text = value.to_str().ok()?;
    let sane = !text.is_empty() && text.len() <= 128 && text.bytes().all(|b| b.is_ascii_graphic());
    sane.then(|| text.to_owned())
}

pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(client_request_id)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.path().to_owned();

    // Everything the request does (its turn, model and tool calls, queries) runs inside.
    let span =
        tracing::info_span!("http_request", request_id = %id, method = %method, path = %path);
    let response = tracing::Instrument::instrument(next.call(req), span)
        .await?
        .map_into_boxed_body();
    let status = response.status();
    let mut response = if status.is_client_error() || status.is_server_error() {
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        if status.is_server_error() {
            tracing::warn!(request_id = %id, %method, %path, status = status.as_u16(), latency_ms, "request failed");
        } else {
            tracing::debug!(request_id = %id, %method, %path, status = status.as_u16(), latency_ms, "request refused");
        }
        json_error_body(response, &id)
    } else {
        tracing::debug!(request_id = %id, %method, %path, status = status.as_u16(), "request");
        response
    };
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    Ok(response)
}

/// Gives an error response the contract's JSON body when it has none (the router's 404/405,
/// actix's own errors), and puts the request id into every 500.
fn json_error_body(
    response: ServiceResponse<BoxBody>,
    request_id: &str,
) -> ServiceResponse<BoxBody> {
    let status = response.status();
    let is_json = response
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json && status != StatusCode::INTERNAL_SERVER_ERROR {
        return response;
    }
    let (code, message) = match status {
        StatusCode::NOT_FOUND => (ErrorCode::NotFound, "no such route"),
        StatusCode::METHOD_NOT_ALLOWED => (
            ErrorCode::MethodNotAllowed,
            "method not allowed on this route",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            ErrorCode::PayloadTooLarge,
            "the request body is over the size limit",
        ),
        StatusCode::UNAUTHORIZED => (
            ErrorCode::Unauthenticated,
            "a valid bearer token is required",
        ),
        StatusCode::SERVICE_UNAVAILABLE => (ErrorCode::Unavailable, "the service is unavailable"),
        StatusCode::BAD_REQUEST
            if response.request().method() == actix_web::http::Method::OPTIONS
                && response
                    .request()
                    .headers()
                    .contains_key(actix_web::http::header::ACCESS_CONTROL_REQUEST_METHOD) =>
        {
            (
                ErrorCode::BadRequest,
                "CORS preflight refused: this origin, method or header is not allowed (server.cors_origins)",
            )
        }
        s if s.is_server_error() => (ErrorCode::Internal, "internal error"),
        _ => (ErrorCode::BadRequest, "the request was not understood"),
    };
    let mut problem = Problem::new(code, message);
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        problem = problem.with_details(serde_json::json!({ "requestId": request_id }));
    }
    let (request, old) = response.into_parts();
    let mut new = HttpResponse::build(status).json(error_body(&problem));
    for (name, value) in old.headers() {
        if name != CONTENT_TYPE && name != actix_web::http::header::CONTENT_LENGTH {
            new.headers_mut().insert(name.clone(), value.clone());
        }
    }
    ServiceResponse::new(request, new)
}

/// How long a request body may take to arrive (`server.body_timeout_secs`), as app data.
#[derive(Debug, Clone, Copy)]
pub struct BodyDeadline(pub Duration);

/// Request bodies: refused when compressed (bodies are never inflated, so none can grow past
/// the size it declares), and read against a deadline, so that a client trickling its body
/// cannot hold a connection for long. WebSocket upgrades keep their stream as it is.
pub async fn body_guard(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    if let Some(encoding) = req.headers().get(CONTENT_ENCODING)
        && !is_identity(encoding)
    {
        let response = ApiError::UnsupportedEncoding.error_response();
        return Ok(req.into_response(response));
    }
    let has_body = req.headers().contains_key(TRANSFER_ENCODING)
        || req
            .headers()
            .get(CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    if has_body
        && !req.headers().contains_key(UPGRADE)
        && let Some(BodyDeadline(timeout)) = req.app_data::<BodyDeadline>().copied()
    {
        let payload = req.take_payload();
        req.set_payload(Payload::Stream {
            payload: Box::pin(DeadlinePayload {
                inner: payload,
                deadline: Box::pin(tokio::time::sleep(timeout)),
                expired: false,
            }),
        });
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

fn is_identity(value: &HeaderValue) -> bool {
    value
        .to_str()
        .is_ok_and(|v| v.trim().eq_ignore_ascii_case("identity"))
}

/// A request body that fails with `TimedOut` once its deadline passes.
struct DeadlinePayload {
    inner: Payload,
    deadline: Pin<Box<tokio::time::Sleep>>,
    expired: bool,
}

impl Stream for DeadlinePayload {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.expired {
            return Poll::Ready(None);
        }
        if let Poll::Ready(item) = Pin::new(&mut self.inner).poll_next(cx) {
            return Poll::Ready(item);
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            self.expired = true;
            return Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the request body did not arrive in time",
            )))));
        }
        Poll::Pending
    }
}

/// Whether a body read failed on its deadline.
pub fn is_body_timeout(error: &Error) -> bool {
    matches!(
        error.as_error::<PayloadError>(),
        Some(PayloadError::Io(e)) if e.kind() == std::io::ErrorKind::TimedOut
    )
}
