//! Tasks: the user's to-do items.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::error::{DomainResult, FieldErrors};
use super::page::{Cursor, PageRequest};
use super::values::{optional_text, required_text};

pub const TITLE_MAX: usize = 500;
pub const DESCRIPTION_MAX: usize = 10_000;
pub const PROJECT_MAX: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Pending,
    InProgress,
    Completed,
    Cancelled,
}

impl TaskStatus {
    pub const ALL: [TaskStatus; 4] = [
        Self::Pending,
        Self::InProgress,
        Self::Completed,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::InProgress => "in_progress",
            Self::Completed => "completed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Low,
    Medium,
    High,
    Urgent,
}

impl Priority {
    pub const ALL: [Priority; 4] = [Self::Low, Self::Medium, Self::High, Self::Urgent];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Urgent => "urgent",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == text)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    pub id: Uuid,
    pub title: String,
    pub description: Option<String>,
    pub project: Option<String>,
    pub status: TaskStatus,
    pub priority: Option<Priority>,
    pub due_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Task {
    /// Position in the newest-first listing.
    pub fn cursor(&self) -> Cursor {
        Cursor {
            at: self.created_at,
            id: self.id,
        }
    }

    /// Changes the status, keeping `completedAt` in step: set when the task becomes completed,
    /// cleared when it leaves that status.
    fn set_status(&mut self, status: TaskStatus, now: DateTime<Utc>) {
        if status == TaskStatus::Completed && self.status != TaskStatus::Completed {
            self.completed_at = Some(now);
        } else if status != TaskStatus::Completed {
            self.completed_at = None;
        }
        self.status = status;
    }
}

/// A task as a client or a tool asks to create it (not yet validated).
#[derive(Debug, Clone, Default)]
pub struct NewTask {
    pub title: String,
    pub description: Option<String>,
    pub project: Option<String>,
    pub status: Option<TaskStatus>,
    pub priority: Option<Priority>,
    pub due_at: Option<DateTime<Utc>>,
}

impl NewTask {
    pub(crate) fn validate(self, id: Uuid, now: DateTime<Utc>) -> DomainResult<Task> {
        let mut errors = FieldErrors::new();
        let title = errors.check("title", required_text(&self.title, TITLE_MAX));
        let description = errors.check(
            "description",
            optional_text(self.description.as_deref(), DESCRIPTION_MAX),
        );
        let project = errors.check(
            "project",
            optional_text(self.project.as_deref(), PROJECT_MAX),
        );
        errors.into_result()?;
        let mut task = Task {
            id,
            title: title.unwrap_or_default(),
            description: description.flatten(),
            project: project.flatten(),
            status: TaskStatus::Pending,
            priority: self.priority,
            due_at: self.due_at,
            completed_at: None,
            created_at: now,
            updated_at: now,
        };
        task.set_status(self.status.unwrap_or(TaskStatus::Pending), now);
        Ok(task)
    }
}

/// A partial update: `None` leaves a field as it is; `Some(None)` clears a nullable field.
#[derive(Debug, Clone, Default)]
pub struct TaskPatch {
    pub title: Option<String>,
    pub description: Option<Option<String>>,
    pub project: Option<Option<String>>,
    pub status: Option<TaskStatus>,
    pub priority: Option<Option<Priority>>,
    pub due_at: Option<Option<DateTime<Utc>>>,
}

impl TaskPatch {
    pub(crate) fn apply(self, mut task: Task, now: DateTime<Utc>) -> DomainResult<Task> {
        let mut errors = FieldErrors::new();
        if let Some(title) = self.title
            && let Some(title) = errors.check("title", required_text(&title, TITLE_MAX))
        {
            task.title = title;
        }
        if let Some(description) = self.description
            && let Some(d) = errors.check(
                "description",
                optional_text(description.as_deref(), DESCRIPTION_MAX),
            )
        {
            task.description = d;
        }
        if let Some(project) = self.project
            && let Some(p) = errors.check("project", optional_text(project.as_deref(), PROJECT_MAX))
        {
            task.project = p;
        }
        errors.into_result()?;
        if let Some(status) = self.status {
            task.set_status(status, now);
        }
        if let Some(priority) = self.priority {
            task.priority = priority;
        }
        if let Some(due_at) = self.due_at {
            task.due_at = due_at;
        }
        task.updated_at = now;
        Ok(task)
    }
}

/// Filters of the task listing.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    pub status: Option<TaskStatus>,
    /// Only tasks still to do (pending or in progress).
    pub open: bool,
    pub project: Option<String>,
    pub due_before: Option<DateTime<Utc>>,
    pub due_after: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct TaskQuery {
    pub filter: TaskFilter,
    pub page: PageRequest,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn task() -> Task {
        NewTask {
            title: " Buy milk ".into(),
            ..Default::default()
        }
        .validate(Uuid::now_v7(), now())
        .unwrap()
    }

    #[test]
    fn new_task_is_trimmed_and_pending() {
        let t = task();
        assert_eq!(t.title, "Buy milk");
        assert_eq!(t.status, TaskStatus::Pending);
        assert_eq!(t.completed_at, None);
    }

    #[test]
    fn created_completed_gets_completed_at() {
        let t = NewTask {
            title: "done".into(),
            status: Some(TaskStatus::Completed),
            ..Default::default()
        }
        .validate(Uuid::now_v7(), now())
        .unwrap();
        assert_eq!(t.completed_at, Some(now()));
    }

    #[test]
    fn all_bad_fields_are_reported() {
        let err = NewTask {
            title: "".into(),
            project: Some("p".repeat(101)),
            ..Default::default()
        }
        .validate(Uuid::now_v7(), now())
        .unwrap_err();
        let super::super::error::DomainError::Validation(fields) = err else {
            panic!("expected a validation error");
        };
        assert!(fields.get("title").is_some());
        assert!(fields.get("project").is_some());
    }

    #[test]
    fn completed_at_follows_status() {
        let later = now() + chrono::Duration::hours(1);
        let t = TaskPatch {
            status: Some(TaskStatus::Completed),
            ..Default::default()
        }
        .apply(task(), later)
        .unwrap();
        assert_eq!(t.completed_at, Some(later));
        // Completing again keeps the first completion time.
        let t = TaskPatch {
            status: Some(TaskStatus::Completed),
            ..Default::default()
        }
        .apply(t, later + chrono::Duration::hours(1))
        .unwrap();
        assert_eq!(t.completed_at, Some(later));
        let t = TaskPatch {
            status: Some(TaskStatus::Pending),
            ..Default::default()
        }
        .apply(t, later)
        .unwrap();
        assert_eq!(t.completed_at, None);
    }

    #[test]
    fn patch_null_clears() {
        let mut t = task();
        t.project = Some("home".into());
        let t = TaskPatch {
            project: Some(None),
            ..Default::default()
        }
        .apply(t, now())
        .unwrap();
        assert_eq!(t.project, None);
    }
}
