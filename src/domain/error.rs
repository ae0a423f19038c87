//! The domain's one error type. The HTTP status (or Socket.IO error code) is decided from it at
//! the edge, in one place.

use std::collections::BTreeMap;

use serde::Serialize;

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
}

pub type DomainResult<T> = Result<T, DomainError>;
