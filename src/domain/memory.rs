//! Memories: facts the user asked the assistant to remember.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::error::{DomainResult, FieldErrors};
use super::page::{Cursor, PageRequest};
use super::values::required_text;

pub const CONTENT_MAX: usize = 4_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MemoryKind {
    Note,
    Task,
    Event,
    Conversation,
}

impl MemoryKind {
    pub const ALL: [MemoryKind; 4] = [Self::Note, Self::Task, Self::Event, Self::Conversation];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Note => "note",
            Self::Task => "task",
            Self::Event => "event",
            Self::Conversation => "conversation",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Memory {
    pub id: Uuid,
    pub content: String,
    #[serde(rename = "type")]
    pub kind: MemoryKind,
    pub created_at: DateTime<Utc>,
}

impl Memory {
    pub fn cursor(&self) -> Cursor {
        Cursor {
            at: self.created_at,
            id: self.id,
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewMemory {
    pub content: String,
    pub kind: Option<MemoryKind>,
}

impl NewMemory {
    pub(crate) fn validate(self, id: Uuid, now: DateTime<Utc>) -> DomainResult<Memory> {
        let mut errors = FieldErrors::new();
        let content = errors.check("content", required_text(&self.content, CONTENT_MAX));
        errors.into_result()?;
        Ok(Memory {
            id,
            content: content.unwrap_or_default(),
            kind: self.kind.unwrap_or(MemoryKind::Note),
            created_at: now,
        })
    }
}

#[derive(Debug, Clone)]
pub struct MemoryQuery {
    pub page: PageRequest,
}
