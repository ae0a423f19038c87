//! Users: created on first sight from the identity provider's subject.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::values::UserId;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: UserId,
    pub created_at: DateTime<Utc>,
}
