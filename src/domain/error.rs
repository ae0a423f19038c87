//! The domain's one error type, and the one list of error codes clients read: REST bodies,
//! Socket.IO acks, `chat:error` and the assistant's tool results all take their codes from
//! [`ErrorCode`]. HTTP statuses are decided from them in `http::error`, in one place.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

/// Every error code of the public contract (`../API.md`, "Errors"), snake_case on the wire.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// A body that is not JSON (REST).
    InvalidJson,
    /// A request or event that breaks the contract's rules; details: field → problem.
    ValidationFailed,
    /// A request the server could not read at all (no more specific code applies).
    BadRequest,
    Unauthenticated,
    /// Unknown id, or another user's.
    NotFound,
    /// No such route (REST).
    MethodNotAllowed,
    Conflict,
    PayloadTooLarge,
    UnsupportedEncoding,
    RequestTimeout,
    RateLimited,
    /// A Socket.IO event the server does not handle.
    UnknownEvent,
    Unavailable,
    BadGateway,
    Internal,
}

impl ErrorCode {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidJson => "invalid_json",
            Self::ValidationFailed => "validation_failed",
            Self::BadRequest => "bad_request",
            Self::Unauthenticated => "unauthenticated",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Conflict => "conflict",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedEncoding => "unsupported_encoding",
            Self::RequestTimeout => "request_timeout",
            Self::RateLimited => "rate_limited",
            Self::UnknownEvent => "unknown_event",
            Self::Unavailable => "unavailable",
            Self::BadGateway => "bad_gateway",
            Self::Internal => "internal",
        }
    }

    /// The HTTP status that goes with the code, as the contract's table of errors gives it.
    pub const fn http_status(self) -> u16 {
        match self {
            Self::InvalidJson | Self::ValidationFailed | Self::BadRequest | Self::UnknownEvent => {
                400
            }
            Self::Unauthenticated => 401,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::RequestTimeout => 408,
            Self::Conflict => 409,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedEncoding => 415,
            Self::RateLimited => 429,
            Self::Internal => 500,
            Self::BadGateway => 502,
            Self::Unavailable => 503,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error as a client reads it, on every edge: `{"code", "message", "details"?}` (a REST
/// body holds it under `error`, a Socket.IO ack under `error` next to `ok: false`).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Problem {
    pub code: ErrorCode,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

impl Problem {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: None,
        }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }
}

/// Field name (camelCase, as clients send it) → what is wrong with it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct FieldErrors(BTreeMap<String, String>);

impl FieldErrors {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn single(field: &str, problem: impl Into<String>) -> Self {
        let mut errors = Self::new();
        errors.add(field, problem);
        errors
    }

    /// Names the field a serde error is about: the error's path, or for "missing field `x`" and
    /// "unknown field `x`" at that path, the field itself.
    pub fn from_serde(path: &str, message: &str) -> Self {
        let prefix = if path == "." { "" } else { path };
        let join = |name: &str| {
            if prefix.is_empty() {
                name.to_owned()
            } else if prefix == name || prefix.ends_with(&format!(".{name}")) {
                // serde_path_to_error already descended into the unknown field.
                prefix.to_owned()
            } else {
                format!("{prefix}.{name}")
            }
        };
        for (lead, problem) in [
            ("missing field `", "is required"),
            ("unknown field `", "is not a known field"),
            ("duplicate field `", "is given more than once"),
        ] {
            if let Some(rest) = message.strip_prefix(lead)
                && let Some(name) = rest.split('`').next()
            {
                return Self::single(&join(name), problem);
            }
        }
        let field = if prefix.is_empty() { "body" } else { prefix };
        Self::single(field, message)
    }

    /// Records a problem; the first problem reported for a field wins.
    pub fn add(&mut self, field: &str, problem: impl Into<String>) {
        self.0
            .entry(field.to_owned())
            .or_insert_with(|| problem.into());
    }

    /// Keeps the value of an `Ok`, records the problem of an `Err` under `field`.
    pub fn check<T>(&mut self, field: &str, result: Result<T, String>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(problem) => {
                self.add(field, problem);
                None
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, field: &str) -> Option<&str> {
        self.0.get(field).map(String::as_str)
    }

    /// `Ok(())` when nothing was recorded, else the validation error.
    pub fn into_result(self) -> Result<(), DomainError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(DomainError::Validation(self))
        }
    }
}

impl std::fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        for (field, problem) in &self.0 {
            if !first {
                f.write_str("; ")?;
            }
            first = false;
            write!(f, "{field}: {problem}")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// Unknown id, or an id that belongs to another user (never told apart).
    #[error("not found")]
    NotFound,
    #[error("validation failed: {0}")]
    Validation(FieldErrors),
    #[error("conflict: {0}")]
    Conflict(String),
    /// The signed-in user was erased while this session was open (or before its token was
    /// issued): nothing was written, and the session must end.
    #[error("the user was erased")]
    Erased,
    /// A dependency (the database, a provider) is down or overloaded; nothing was half-written.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The user has used up a quota (chat sends per hour): nothing was written.
    #[error("rate limited: retry after {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// A provider (the model, the embedder) answered with an error or with nonsense.
    #[error("bad gateway: {0}")]
    BadGateway(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl DomainError {
    pub fn invalid(field: &str, problem: impl Into<String>) -> Self {
        Self::Validation(FieldErrors::single(field, problem))
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            Self::NotFound => ErrorCode::NotFound,
            Self::Validation(_) => ErrorCode::ValidationFailed,
            Self::Conflict(_) => ErrorCode::Conflict,
            Self::Erased => ErrorCode::Unauthenticated,
            Self::Unavailable(_) => ErrorCode::Unavailable,
            Self::RateLimited { .. } => ErrorCode::RateLimited,
            Self::BadGateway(_) => ErrorCode::BadGateway,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }

    /// Whether the same request may succeed later, unchanged.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::RateLimited { .. })
    }

    /// What a client is told. An internal error's cause is logged here, never shown.
    pub fn problem(&self) -> Problem {
        let message = match self {
            Self::NotFound => "no such resource".to_owned(),
            Self::Validation(fields) => format!("invalid request: {fields}"),
            Self::Conflict(m) | Self::Unavailable(m) | Self::BadGateway(m) => m.clone(),
            Self::Erased => "this user was erased; sign in again".to_owned(),
            Self::RateLimited { retry_after_secs } => {
                format!("too many messages; try again in {retry_after_secs} s")
            }
            Self::Internal(cause) => {
                tracing::error!(error = format!("{cause:#}"), "internal error");
                "internal error".to_owned()
            }
        };
        let problem = Problem::new(self.code(), message);
        match self {
            Self::Validation(fields) => problem.with_details(json!(fields)),
            Self::RateLimited { retry_after_secs } => {
                problem.with_details(json!({ "retryAfter": retry_after_secs }))
            }
            _ => problem,
        }
    }
}

pub type DomainResult<T> = Result<T, DomainError>;
