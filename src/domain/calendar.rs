//! The user's calendar for other calendar apps: what an iCalendar export holds (the edge writes
//! the format). Bounded: a user's export reads at most [`EXPORT_EVENTS_MAX`] events and
//! [`EXPORT_TASKS_MAX`] tasks.

use super::error::DomainResult;
use super::event::Event;
use super::page::{MAX_LIMIT, PageRequest};
use super::service::Domain;
use super::task::{Task, TaskFilter, TaskQuery};
use super::values::UserId;

pub const EXPORT_EVENTS_MAX: usize = 5_000;
pub const EXPORT_TASKS_MAX: usize = 5_000;

/// What an export holds: every event (a recurring one as its series, with its rule), the open
/// tasks with a due time, and the zone recurring events repeat in.
#[derive(Debug, Clone)]
pub struct CalendarExport {
    pub events: Vec<Event>,
    pub tasks: Vec<Task>,
    /// Recurring events repeat on this zone's wall clock (`ai.timezone`), as in listings.
    pub timezone: chrono_tz::Tz,
}

impl Domain {
    #[tracing::instrument(level = "debug", skip(self), fields(user = %user))]
    pub async fn calendar_export(&self, user: &UserId) -> DomainResult<CalendarExport> {
        let mut events = Vec::new();
        let mut page = PageRequest {
            limit: MAX_LIMIT,
            after: None,
        };
        while events.len() < EXPORT_EVENTS_MAX {
            let rows = self.ports.events.list(user, &page).await?;
            let more = rows.len() > MAX_LIMIT as usize;
            events.extend(rows.into_iter().take(MAX_LIMIT as usize));
            match (more, events.last()) {
                (true, Some(last)) => page.after = Some(last.cursor()),
                _ => break,
            }
        }
        events.truncate(EXPORT_EVENTS_MAX);
        let mut tasks = Vec::new();
        let mut query = TaskQuery {
            filter: TaskFilter {
                open: true,
                ..TaskFilter::default()
            },
            page: PageRequest {
                limit: MAX_LIMIT,
                after: None,
            },
        };
        while tasks.len() < EXPORT_TASKS_MAX {
            let rows = self.ports.tasks.list(user, &query).await?;
            let more = rows.len() > MAX_LIMIT as usize;
            let rows: Vec<Task> = rows.into_iter().take(MAX_LIMIT as usize).collect();
            let last = rows.last().map(Task::cursor);
            tasks.extend(rows.into_iter().filter(|t| t.due_at.is_some()));
            match (more, last) {
                (true, Some(cursor)) => query.page.after = Some(cursor),
                _ => break,
            }
        }
        tasks.truncate(EXPORT_TASKS_MAX);
        Ok(CalendarExport {
            events,
            tasks,
            timezone: self.settings.timezone,
        })
    }
}
