//! Conversations and their messages.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::error::{DomainResult, ErrorCode, FieldErrors};
use super::page::{Cursor, PageRequest};
use super::values::optional_text;

pub const TITLE_MAX: usize = 500;
pub const CLIENT_MESSAGE_ID_MAX: usize = 64;
pub const MESSAGE_TEXT_MAX: usize = 8_000;

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Conversation {
    pub id: Uuid,
    pub title: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_message_at: Option<DateTime<Utc>>,
}

impl Conversation {
    /// Position in the most-recent-activity-first listing.
    pub fn cursor(&self) -> Cursor {
        Cursor {
            at: self.updated_at,
            id: self.id,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct NewConversation {
    pub title: Option<String>,
}

impl NewConversation {
    pub(crate) fn validate(self, id: Uuid, now: DateTime<Utc>) -> DomainResult<Conversation> {
        let mut errors = FieldErrors::new();
        let title = errors.check("title", optional_text(self.title.as_deref(), TITLE_MAX));
        errors.into_result()?;
        Ok(Conversation {
            id,
            title: title.flatten(),
            created_at: now,
            updated_at: now,
            last_message_at: None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    User,
    Assistant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Assistant => "assistant",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "user" => Some(Self::User),
            "assistant" => Some(Self::Assistant),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ToolCallStatus {
    Ok,
    Error,
}

/// A tool the assistant ran while writing a message, stored with that message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: Value,
    pub status: ToolCallStatus,
    pub result: Option<Value>,
    pub error: Option<String>,
    /// The failure's code (`ErrorCode`); absent from calls stored before codes were.
    #[serde(default)]
    pub error_code: Option<ErrorCode>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub role: Role,
    pub content: String,
    pub tool_calls: Vec<ToolCall>,
    pub client_message_id: Option<String>,
    pub created_at: DateTime<Utc>,
    /// For an assistant message: the user message it answers. Internal (not in the API).
    #[serde(skip)]
    pub reply_to: Option<Uuid>,
}

impl Message {
    pub fn cursor(&self) -> Cursor {
        Cursor {
            at: self.created_at,
            id: self.id,
        }
    }
}

/// A message to append to a conversation (chat turns write these).
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub role: Role,
    pub content: String,
    pub tool_calls: Vec<ToolCall>,
    pub client_message_id: Option<String>,
    pub reply_to: Option<Uuid>,
}

impl NewMessage {
    pub(crate) fn validate(
        self,
        id: Uuid,
        conversation_id: Uuid,
        now: DateTime<Utc>,
    ) -> DomainResult<Message> {
        let mut errors = FieldErrors::new();
        if self.role == Role::User {
            if self.content.trim().is_empty() {
                errors.add("text", "must not be empty");
            } else if self.content.chars().count() > MESSAGE_TEXT_MAX {
                errors.add(
                    "text",
                    format!("must be at most {MESSAGE_TEXT_MAX} characters"),
                );
            }
        }
        if self.content.contains('\0') {
            errors.add("text", "must not contain NUL characters");
        }
        if let Some(id) = &self.client_message_id {
            if id.is_empty() || id.chars().count() > CLIENT_MESSAGE_ID_MAX {
                errors.add(
                    "clientMessageId",
                    format!("must be 1 to {CLIENT_MESSAGE_ID_MAX} characters"),
                );
            } else if id.contains('\0') {
                // PostgreSQL cannot store it: refused here rather than failing the insert.
                errors.add("clientMessageId", "must not contain NUL characters");
            }
        }
        errors.into_result()?;
        Ok(Message {
            id,
            conversation_id,
            role: self.role,
            content: self.content,
            tool_calls: self.tool_calls,
            client_message_id: self.client_message_id,
            created_at: now,
            reply_to: self.reply_to,
        })
    }
}

#[derive(Debug, Clone)]
pub struct ConversationQuery {
    pub page: PageRequest,
}

/// Messages older than `before` (newest page first when absent), returned oldest → newest.
#[derive(Debug, Clone)]
pub struct MessageQuery {
    pub before: Option<Uuid>,
    pub limit: u32,
}
