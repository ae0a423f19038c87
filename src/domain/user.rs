//! Users: created on first sight from the identity provider's subject.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::values::UserId;

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct User {
    #[schema(value_type = String)]
    pub id: UserId,
    pub created_at: DateTime<Utc>,
}
