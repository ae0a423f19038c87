//! Where errors become HTTP responses: the status of their code (`ErrorCode::http_status`),
//! the headers that go with it, and the JSON error body of the contract,
//! `{"error": {"code", "message", "details"?}}`.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde_json::{Value, json};

use crate::auth::AuthError;
use crate::domain::{DomainError, ErrorCode, FieldErrors, Problem};

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
pub fn error_body(problem: &Problem) -> Value {
    json!({ "error": problem })
}

impl ApiError {
    fn problem(&self) -> Problem {
        match self {
            Self::Domain(e) => e.problem(),
            Self::InvalidJson(m) => Problem::new(ErrorCode::InvalidJson, m.clone()),
            Self::Unauthenticated(reason) => {
                tracing::debug!(%reason, "unauthenticated request");
                Problem::new(
                    ErrorCode::Unauthenticated,
                    "a valid bearer token is required",
                )
            }
            Self::PayloadTooLarge => Problem::new(
                ErrorCode::PayloadTooLarge,
                "the request body is over the size limit",
            ),
            Self::UnsupportedEncoding => Problem::new(
                ErrorCode::UnsupportedEncoding,
                "compressed request bodies are not accepted: send the body without Content-Encoding",
            ),
            Self::BodyTimeout => Problem::new(
                ErrorCode::RequestTimeout,
                "the request body did not arrive in time",
            ),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        let code = match self {
            Self::Domain(e) => e.code(),
            Self::InvalidJson(_) => ErrorCode::InvalidJson,
            Self::Unauthenticated(_) => ErrorCode::Unauthenticated,
            Self::PayloadTooLarge => ErrorCode::PayloadTooLarge,
            Self::UnsupportedEncoding => ErrorCode::UnsupportedEncoding,
            Self::BodyTimeout => ErrorCode::RequestTimeout,
        };
        StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let problem = self.problem();
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
        response.json(error_body(&problem))
    }
}

/// The contract's error body, as the OpenAPI document describes it.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // described, never built: `error_body` writes it
pub struct ErrorBody {
    error: Problem,
}

/// The errors any authenticated operation may answer, for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // described, never built
pub enum ApiErrors {
    /// `invalid_json`, `validation_failed` (details: field → problem) or `bad_request`
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// `unauthenticated`: no token, or a bad or expired one
    #[response(status = 401)]
    Unauthenticated(ErrorBody),
    /// `not_found`: an unknown id, or one another user owns
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// `request_timeout`: the body did not arrive within `server.body_timeout_secs`
    #[response(status = 408)]
    RequestTimeout(ErrorBody),
    /// `conflict`
    #[response(status = 409)]
    Conflict(ErrorBody),
    /// `payload_too_large`: the body is over `server.max_body_bytes`
    #[response(status = 413)]
    PayloadTooLarge(ErrorBody),
    /// `unsupported_encoding`: bodies are never decompressed
    #[response(status = 415)]
    UnsupportedEncoding(ErrorBody),
    /// `rate_limited`, with `Retry-After`
    #[response(status = 429)]
    RateLimited(ErrorBody),
    /// `internal`, with `details.requestId`
    #[response(status = 500)]
    Internal(ErrorBody),
    /// `unavailable`: a dependency is down; with `Retry-After`; nothing was half-written
    #[response(status = 503)]
    Unavailable(ErrorBody),
}
