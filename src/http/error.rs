//! The one place where errors become HTTP statuses and the JSON error body of the contract:
//! `{"error": {"code", "message", "details"?}}`.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde_json::{Value, json};

use crate::auth::AuthError;
use crate::domain::{DomainError, FieldErrors};

/// Seconds a client should wait before retrying a 503.
const RETRY_AFTER_SECS: &str = "5";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error("{0}")]
    InvalidJson(String),
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    #[error("payload too large")]
    PayloadTooLarge,
    /// A `Content-Encoding` other than identity: bodies are never inflated.
    #[error("unsupported content encoding")]
    UnsupportedEncoding,
    /// The body did not arrive within `server.body_timeout_secs`.
    #[error("request body timed out")]
    BodyTimeout,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Invalid(reason) => Self::Unauthenticated(reason),
            AuthError::Unavailable(reason) => Self::Domain(DomainError::Unavailable(reason)),
        }
    }
}

impl ApiError {
    pub fn validation(errors: FieldErrors) -> Self {
        Self::Domain(DomainError::Validation(errors))
    }
}

/// The JSON body of an error response.
pub fn error_body(code: &str, message: &str, details: Option<Value>) -> Value {
    let mut error = json!({ "code": code, "message": message });
    if let Some(details) = details {
        error["details"] = details;
    }
    json!({ "error": error })
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Domain(e) => match e {
                DomainError::NotFound => StatusCode::NOT_FOUND,
                DomainError::Validation(_) => StatusCode::BAD_REQUEST,
                DomainError::Conflict(_) => StatusCode::CONFLICT,
                DomainError::Erased => StatusCode::UNAUTHORIZED,
                DomainError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
                DomainError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
                DomainError::BadGateway(_) => StatusCode::BAD_GATEWAY,
                DomainError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
            Self::InvalidJson(_) => StatusCode::BAD_REQUEST,
            Self::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedEncoding => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let (code, message, details) = match self {
            Self::Domain(e) => match e {
                DomainError::NotFound => ("not_found", "no such resource".to_owned(), None),
                DomainError::Validation(fields) => (
                    "validation_failed",
                    format!("invalid request: {fields}"),
                    serde_json::to_value(fields).ok(),
                ),
                DomainError::Conflict(m) => ("conflict", m.clone(), None),
                DomainError::Erased => (
                    "unauthenticated",
                    "this user was erased; sign in again".to_owned(),
                    None,
                ),
                DomainError::Unavailable(m) => ("unavailable", m.clone(), None),
                DomainError::RateLimited { retry_after_secs } => (
                    "rate_limited",
                    format!("too many messages; try again in {retry_after_secs} s"),
                    Some(json!({ "retryAfter": retry_after_secs })),
                ),
                DomainError::BadGateway(m) => ("bad_gateway", m.clone(), None),
                DomainError::Internal(cause) => {
                    // The cause goes to the log, never to the client.
                    tracing::error!(error = format!("{cause:#}"), "internal error");
                    ("internal", "internal error".to_owned(), None)
                }
            },
            Self::InvalidJson(m) => ("invalid_json", m.clone(), None),
            Self::Unauthenticated(reason) => {
                tracing::debug!(%reason, "unauthenticated request");
                (
                    "unauthenticated",
                    "a valid bearer token is required".to_owned(),
                    None,
                )
            }
            Self::PayloadTooLarge => (
                "payload_too_large",
                "the request body is over the size limit".to_owned(),
                None,
            ),
            Self::UnsupportedEncoding => (
                "unsupported_encoding",
                "compressed request bodies are not accepted: send the body without Content-Encoding"
                    .to_owned(),
                None,
            ),
            Self::BodyTimeout => (
                "request_timeout",
                "the request body did not arrive in time".to_owned(),
                None,
            ),
        };
        let mut response = HttpResponse::build(self.status_code());
        if self.status_code() == StatusCode::SERVICE_UNAVAILABLE {
            response.insert_header((
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECS),
            ));
        }
        if let Self::Domain(DomainError::RateLimited { retry_after_secs }) = self {
            response.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
        }
        if self.status_code() == StatusCode::UNAUTHORIZED {
            response.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
        response.json(error_body(code, &message, details))
    }
}
