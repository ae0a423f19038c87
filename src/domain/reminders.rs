//! Reminder use cases, and the scheduler that fires them.
//!
//! The scheduler holds no state of its own: PostgreSQL is the queue. Each pass fires what is
//! due in one transaction (rows claimed with `SKIP LOCKED`, so several instances share the
//! work and each reminder fires once; a worker killed mid-pass leaves its rows to the others
//! when its transaction dies), then sleeps until the next due time, or until a write here
//! changes it, or `poll` at most (for reminders other instances wrote).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::bus::Change;
use super::chat::ChatEvent;
use super::error::{DomainError, DomainResult};
use super::page::Page;
use super::ports::{FireRequest, FiredBatch};
use super::reminder::{NewReminder, Reminder, ReminderPatch, ReminderQuery, ReminderStatus};
use super::service::Domain;
use super::values::UserId;

impl Domain {
    #[tracing::instrument(level = "debug", skip_all, fields(user = %user))]
    pub async fn create_reminder(&self, user: &UserId, new: NewReminder) -> DomainResult<Reminder> {
        self.create_reminder_as(user, Uuid::now_v7(), new).await
    }

    /// [`Domain::create_task_as`], for a reminder.
    pub(crate) async fn create_reminder_as(
        &self,
        user: &UserId,
        id: Uuid,
        new: NewReminder,
    ) -> DomainResult<Reminder> {
        let reminder = new.validate(id, self.ports.clock.now())?;
        if let Err(e) = self.ports.reminders.insert(user, &reminder).await {
            return super::service::made_before(e, self.ports.reminders.get(user, id)).await;
        }
        self.signal_reminders();
        Ok(reminder)
    }

    pub async fn get_reminder(&self, user: &UserId, id: Uuid) -> DomainResult<Reminder> {
        self.ports
            .reminders
            .get(user, id)
            .await?
            .ok_or(DomainError::NotFound)
    }

    pub async fn list_reminders(
        &self,
        user: &UserId,
        query: ReminderQuery,
    ) -> DomainResult<Page<Reminder>> {
        if let (Some(from), Some(to)) = (query.from, query.to)
            && to <= from
        {
            return Err(DomainError::invalid("to", "must be after from"));
        }
        let rows = self.ports.reminders.list(user, &query).await?;
        Ok(Page::from_rows(rows, query.page.limit, Reminder::cursor))
    }

    /// Snoozes, dismisses, cancels or renames a reminder; every device of the user hears of
    /// it (`reminder:updated`), except `origin`, the connection that asked.
    #[tracing::instrument(level = "debug", skip(self, patch, origin), fields(user = %user))]
    pub async fn update_reminder(
        &self,
        user: &UserId,
        id: Uuid,
        patch: ReminderPatch,
        origin: Option<Arc<str>>,
    ) -> DomainResult<Reminder> {
        let now = self.ports.clock.now();
        let reminder = self
            .ports
            .reminders
            .update(user, id, Box::new(move |r| patch.apply(r, now)))
            .await?
            .ok_or(DomainError::NotFound)?;
        self.signal_reminders();
        self.publish_from(user, Change::ReminderUpdated(reminder.clone()), origin);
        Ok(reminder)
    }

    /// Deletes a reminder; devices showing it hear that it was cancelled.
    #[tracing::instrument(level = "debug", skip(self), fields(user = %user))]
    pub async fn delete_reminder(&self, user: &UserId, id: Uuid) -> DomainResult<()> {
        let mut reminder = self.get_reminder(user, id).await?;
        if !self.ports.reminders.delete(user, id).await? {
            return Err(DomainError::NotFound);
        }
        reminder.status = ReminderStatus::Cancelled;
        reminder.updated_at = self.ports.clock.now();
        self.publish(user, Change::ReminderUpdated(reminder));
        Ok(())
    }

    /// Fires what is due now and tells each user's devices: `reminder:due` (or
    /// `reminder:updated` for one missed while the server was down), and the assistant's
    /// message in the reminder's conversation.
    pub async fn fire_due_reminders(
        &self,
        settings: &SchedulerSettings,
    ) -> DomainResult<FiredBatch> {
        let now = self.ports.clock.now();
        let batch = self
            .ports
            .reminders
            .fire_due(&FireRequest {
                now,
                max_lateness: chrono::Duration::from_std(settings.max_lateness)
                    .unwrap_or(chrono::Duration::MAX),
                limit: settings.batch_size,
                timezone: self.settings.timezone,
                push_ttl: chrono::Duration::from_std(settings.push_ttl)
                    .unwrap_or(chrono::Duration::MAX),
            })
            .await?;
        if batch.pushes > 0 {
            self.push_signal().notify_one();
        }
        for fired in &batch.fired {
            let reminder = &fired.reminder;
            let late = reminder.fired_late;
            let lateness = (now - reminder.due_at).to_std().unwrap_or_default();
            self.ports.meter.reminder_fired(late, lateness);
            tracing::info!(
                user = %fired.user,
                reminder = %reminder.id,
                late,
                lateness_ms = lateness.as_millis() as u64,
                "reminder fired"
            );
            let change = if late {
                Change::ReminderUpdated(reminder.clone())
            } else {
                Change::ReminderDue(reminder.clone())
            };
            self.publish(&fired.user, change);
            if let Some(message) = &fired.message {
                self.publish(
                    &fired.user,
                    Change::Chat(ChatEvent::Message {
                        message: message.clone(),
                    }),
                );
            }
        }
        Ok(batch)
    }
}

#[derive(Debug, Clone)]
pub struct SchedulerSettings {
    /// Reminders fired per transaction.
    pub batch_size: i64,
    /// The longest the scheduler sleeps without looking (catches other instances' writes).
    pub poll: Duration,
    /// A reminder found later than this after its time is marked fired late, not delivered.
    pub max_lateness: Duration,
    /// How long a fired reminder is worth pushing (`push.ttl_secs`).
    pub push_ttl: Duration,
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        Self {
            batch_size: 200,
            poll: Duration::from_secs(10),
            max_lateness: Duration::from_secs(3600),
            push_ttl: Duration::from_secs(3600),
        }
    }
}

/// When due rows are held by another worker, look again this soon.
const HELD_ELSEWHERE: Duration = Duration::from_millis(250);

pub struct Scheduler {
    pub domain: Domain,
    pub settings: SchedulerSettings,
}

impl Scheduler {
    /// Runs until `stop` is cancelled.
    pub async fn run(self, stop: CancellationToken) {
        tracing::debug!("reminder scheduler started");
        let wake = self.domain.reminder_signal();
        let mut failing = Duration::ZERO;
        loop {
            let pass_start = self.domain.ports.clock.now();
            let outcome = tokio::select! {
                () = stop.cancelled() => break,
                outcome = self.domain.fire_due_reminders(&self.settings) => outcome,
            };
            let wait = match outcome {
                Ok(batch) => {
                    if !failing.is_zero() {
                        tracing::info!("reminder scheduler recovered");
                        failing = Duration::ZERO;
                    }
                    if batch.fired.len() as i64 >= self.settings.batch_size {
                        continue;
                    }
                    self.wait_for(batch.next_due, pass_start)
                }
                Err(e) => {
                    if failing.is_zero() {
                        tracing::warn!(error = %e, "firing reminders failed; retrying");
                    }
                    failing = (failing * 2).clamp(
                        Duration::from_millis(500),
                        self.settings.poll.max(HELD_ELSEWHERE),
                    );
                    failing
                }
            };
            tokio::select! {
                () = stop.cancelled() => break,
                () = wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
        tracing::debug!("reminder scheduler stopped");
    }

    /// How long to sleep before the next pass, which started at `pass_start`.
    fn wait_for(
        &self,
        next_due: Option<chrono::DateTime<chrono::Utc>>,
        pass_start: chrono::DateTime<chrono::Utc>,
    ) -> Duration {
        let Some(at) = next_due else {
            return self.settings.poll;
        };
        if at <= pass_start {
            // Due before this pass began, yet not fired by it: another worker holds it.
            return HELD_ELSEWHERE;
        }
        // Fell due while the pass ran: at once (a reminder due every few milliseconds must not
        // wait as if it were held elsewhere).
        let now = self.domain.ports.clock.now();
        (at - now)
            .to_std()
            .unwrap_or(Duration::ZERO)
            .min(self.settings.poll)
    }
}
