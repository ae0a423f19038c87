//! The signed-in user as an extractor: a handler that takes `AuthUser` cannot forget auth.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{FromRequest, HttpRequest, web};
use chrono::{DateTime, Utc};

use super::AppState;
use super::error::ApiError;
use crate::auth::bearer_token;
use crate::domain::{DomainError, UserId};

/// The signed-in user, and when their session began (the token's issue time, or this
/// request for tokens without one).
pub struct AuthUser(pub UserId, pub DateTime<Utc>);

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // Raw bytes only: a non-ASCII header is a 401, never a panic.
        let token = match req.headers().get(AUTHORIZATION) {
            None => Err(ApiError::Unauthenticated("no Authorization header".into())),
            Some(value) => bearer_token(value.as_bytes())
                .map(str::to_owned)
                .map_err(ApiError::from),
        };
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let token = token?;
            let state = state.ok_or_else(|| {
                ApiError::Domain(DomainError::Internal(anyhow::anyhow!("app state missing")))
            })?;
            let identity = state.verifier.verify(&token).await?;
            let since = identity.issued_at.unwrap_or_else(Utc::now);
            state.domain.sign_in(&identity.user, since).await?;
            Ok(AuthUser(identity.user, since))
        })
    }
}
