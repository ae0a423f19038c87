//! The user's calendar for other calendar apps: what an iCalendar export holds (the edge writes
//! the format). Bounded: a user's export reads at most [`EXPORT_EVENTS_MAX`] events and
//! [`EXPORT_TASKS_MAX`] tasks.

use super::bus::Change;
use super::error::{DomainError, DomainResult, FieldErrors};
use super::event::{EXDATES_MAX, Event, NewEvent};
use super::page::{MAX_LIMIT, PageRequest};
use super::ports::{ImportRow, StoredFeed};
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

/// Reads of one user's feed per hour: calendar apps poll every few minutes to hours.
pub const FEED_READS_PER_HOUR: u32 = 120;

/// A feed's token as the user receives it (once): `<id>.<secret>`.
#[derive(Debug, Clone)]
pub struct FeedToken(pub String);

fn sha256(bytes: &[u8]) -> [u8; 32] {
    hmac_sha256::Hash::hash(bytes)
}

impl Domain {
    /// Makes the user a new feed (replacing the old, whose URL stops working) and returns its
    /// token. The secret is 244 bits from the OS's generator (two v4 UUIDs); only its hash is
    /// stored.
    #[tracing::instrument(level = "debug", skip(self), fields(user = %user))]
    pub async fn create_calendar_feed(&self, user: &UserId) -> DomainResult<FeedToken> {
        let id = uuid::Uuid::now_v7();
        let secret = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let feed = StoredFeed {
            id,
            user: user.clone(),
            secret_hash: sha256(secret.as_bytes()),
        };
        self.ports
            .feeds
            .replace_feed(user, &feed, self.ports.clock.now())
            .await?;
        tracing::info!(feed = %id, "calendar feed created");
        Ok(FeedToken(format!("{}.{secret}", id.simple())))
    }

    pub async fn revoke_calendar_feed(&self, user: &UserId) -> DomainResult<()> {
        if !self.ports.feeds.revoke_feed(user).await? {
            return Err(DomainError::NotFound);
        }
        tracing::info!(user = %user, "calendar feed revoked");
        Ok(())
    }

    /// The calendar behind a feed token; `NotFound` for a token that is not (or no longer) a
    /// feed's, told apart from nothing else. Rate-limited per feed owner.
    pub async fn calendar_feed(&self, token: &str) -> DomainResult<(uuid::Uuid, CalendarExport)> {
        use subtle::ConstantTimeEq as _;
        let (id, secret) = token.split_once('.').ok_or(DomainError::NotFound)?;
        let id = uuid::Uuid::try_parse(id).map_err(|_| DomainError::NotFound)?;
        let given = sha256(secret.as_bytes());
        let Some(feed) = self.ports.feeds.feed(id).await? else {
            return Err(DomainError::NotFound);
        };
        if !bool::from(feed.secret_hash.ct_eq(&given)) {
            return Err(DomainError::NotFound);
        }
        if let Err(wait) = self.feed_reads.check(&feed.user) {
            return Err(DomainError::RateLimited {
                retry_after_secs: wait.as_secs().max(1),
            });
        }
        Ok((feed.id, self.calendar_export(&feed.user).await?))
    }

    /// When the feed's body last changed, given the one it serves now.
    pub async fn calendar_feed_changed(
        &self,
        feed: uuid::Uuid,
        body: &[u8],
    ) -> DomainResult<(String, chrono::DateTime<chrono::Utc>)> {
        let hash = sha256(body);
        let at = self
            .ports
            .feeds
            .feed_content(feed, hash, self.ports.clock.now())
            .await?;
        let tag: String = hash[..16].iter().map(|b| format!("{b:02x}")).collect();
        Ok((tag, at))
    }
}

/// The most events one import may hold (a file's VEVENTs, overrides included).
pub const IMPORT_EVENTS_MAX: usize = 2_000;

/// An event read from an iCalendar file (the edge reads the format), not yet validated.
#[derive(Debug, Clone)]
pub struct ImportedEvent {
    /// The UID, and for a RECURRENCE-ID override the instant it replaces.
    pub uid: String,
    pub recurrence_id: Option<chrono::DateTime<chrono::Utc>>,
    /// The file's line where the VEVENT begins, for errors.
    pub line: usize,
    pub event: NewEvent,
    pub timezone: Option<chrono_tz::Tz>,
    pub exdates: Vec<chrono::DateTime<chrono::Utc>>,
}

/// A part of the file that was not imported, and why.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SkippedItem {
    /// The component's UID, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// The file's line where the component begins.
    pub line: usize,
    pub reason: String,
}

/// What an import wrote.
#[derive(Debug, Default)]
pub struct ImportApplied {
    pub created: Vec<Event>,
    pub updated: Vec<Event>,
    pub unchanged: usize,
}

/// What an import did, as the client is told.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportReport {
    pub created: usize,
    pub updated: usize,
    /// Events that were already there exactly as the file has them.
    pub unchanged: usize,
    pub skipped: usize,
    pub skipped_items: Vec<SkippedItem>,
}

/// The key an event is imported under: its UID, and an override's RECURRENCE-ID.
fn import_key(event: &ImportedEvent) -> String {
    match event.recurrence_id {
        Some(at) => format!(
            "{};RECURRENCE-ID={}",
            event.uid,
            at.format("%Y%m%dT%H%M%SZ")
        ),
        None => event.uid.clone(),
    }
}

/// The id in a UID this server exported (`<id>@pixie`).
fn own_id(uid: &str) -> Option<uuid::Uuid> {
    uid.strip_suffix("@pixie")
        .and_then(|id| uuid::Uuid::try_parse(id).ok())
}

impl Domain {
    /// Imports a file's events, all or none: an event that fails validation fails the import
    /// with its line. Re-importing a file updates the events it made, never duplicates them.
    #[tracing::instrument(level = "debug", skip_all, fields(user = %user, events = events.len()))]
    pub async fn import_calendar(
        &self,
        user: &UserId,
        events: Vec<ImportedEvent>,
        skipped: Vec<SkippedItem>,
    ) -> DomainResult<ImportReport> {
        if events.len() > IMPORT_EVENTS_MAX {
            return Err(DomainError::invalid(
                "body",
                format!(
                    "the file has {} events; at most {IMPORT_EVENTS_MAX} are imported at once",
                    events.len()
                ),
            ));
        }
        let now = self.ports.clock.now();
        let mut rows = Vec::with_capacity(events.len());
        for imported in events {
            let line = imported.line;
            let at_line = |problem: String| {
                let mut fields = FieldErrors::new();
                fields.add("body", format!("line {line}: {problem}"));
                fields.add("line", line.to_string());
                DomainError::Validation(fields)
            };
            if imported.exdates.len() > EXDATES_MAX {
                return Err(at_line(format!("at most {EXDATES_MAX} EXDATEs per event")));
            }
            let key = import_key(&imported);
            let mut event = match imported.event.validate(uuid::Uuid::now_v7(), now) {
                Ok(event) => event,
                Err(DomainError::Validation(fields)) => return Err(at_line(fields.to_string())),
                Err(other) => return Err(other),
            };
            event.timezone = imported.timezone;
            let mut exdates = imported.exdates;
            exdates.sort_unstable();
            exdates.dedup();
            event.exdates = exdates;
            rows.push(ImportRow {
                own: own_id(&imported.uid),
                key,
                event,
            });
        }
        let applied = self.ports.events.import(user, rows).await?;
        if !applied.created.is_empty() || !applied.updated.is_empty() {
            self.signal_index();
            self.signal_reminders();
        }
        tracing::info!(
            created = applied.created.len(),
            updated = applied.updated.len(),
            unchanged = applied.unchanged,
            skipped = skipped.len(),
            "calendar imported"
        );
        let report = ImportReport {
            created: applied.created.len(),
            updated: applied.updated.len(),
            unchanged: applied.unchanged,
            skipped: skipped.len(),
            skipped_items: skipped,
        };
        for event in applied.created {
            self.publish(user, Change::EventCreated(event));
        }
        for event in applied.updated {
            self.publish(user, Change::EventUpdated(event));
        }
        Ok(report)
    }
}
