//! The relay between instances over PostgreSQL LISTEN/NOTIFY on the server's own database.
//!
//! Signals to send go to a publisher thread, which sends them in batches with
//! `pg_notify('pixie_realtime', …)` over one connection, so that they arrive everywhere in the
//! order they were published. A listener thread on another connection receives every
//! instance's notifications and hands those of the others, decoded once, to the receiver the
//! relay was started with.
//!
//! A notification carries `{"i": <instance>, "e": <signal>}`; one too large for a NOTIFY
//! payload (8000 bytes) is stored in `realtime_payloads` and the notification carries
//! `{"i": …, "r": <row id>}` instead. The rows are swept after a few minutes.
//!
//! Delivery to other instances is best effort, like a socket's: while the database is
//! unreachable, events for other instances are dropped (with a log line) and both threads
//! reconnect with backoff; clients resynchronise through REST after a reconnect anyway.

use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread;
use std::time::{Duration, Instant};

use diesel::pg::PgConnection;
use diesel::sql_types::{Array, BigInt, Text};
use diesel::{Connection, QueryableByName, RunQueryDsl};
use tokio::sync::mpsc as tokio_mpsc;

use crate::domain::bus::Signal;
use crate::domain::ports::Relay;

const CHANNEL: &str = "pixie_realtime";
/// NOTIFY payloads must be shorter than 8000 bytes.
const MAX_NOTIFY_BYTES: usize = 7900;
/// Signals waiting for the publisher; beyond this, signals for other instances are dropped.
const QUEUE: usize = 65_536;
/// Signals from other instances waiting to be acted on; beyond this the listener waits.
const INCOMING: usize = 4_096;
const BATCH: usize = 256;
const SWEEP_EVERY: Duration = Duration::from_secs(60);
const KEEP_PAYLOADS: &str = "5 minutes";
/// The listener polls the connection this often at most when idle (diesel exposes no socket
/// to wait on), and at once while notifications flow.
const MAX_IDLE_POLL: Duration = Duration::from_millis(20);

pub struct PgRelay {
    outbox: SyncSender<String>,
}

impl PgRelay {
    /// Connects both threads (the first connection is tried at once, so that a bad URL stops
    /// the start). Other instances' signals arrive on the receiver; the listener stops when
    /// it is dropped.
    pub fn start(url: &str) -> anyhow::Result<(Arc<Self>, tokio_mpsc::Receiver<Signal>)> {
        let instance = uuid::Uuid::new_v4().simple().to_string();
        let listener = listen(url).map_err(|e| {
            anyhow::anyhow!("realtime.fanout = \"postgres\": cannot LISTEN on database.url: {e}")
        })?;
        let publisher = PgConnection::establish(url).map_err(|e| {
            anyhow::anyhow!("realtime.fanout = \"postgres\": cannot connect to database.url: {e}")
        })?;
        let (outbox, queue) = mpsc::sync_channel(QUEUE);
        {
            let (url, instance) = (url.to_owned(), instance.clone());
            thread::Builder::new()
                .name("fanout-publish".into())
                .spawn(move || publish_loop(url, instance, publisher, queue))?;
        }
        let (incoming, received) = tokio_mpsc::channel(INCOMING);
        {
            let url = url.to_owned();
            thread::Builder::new()
                .name("fanout-listen".into())
                .spawn(move || listen_loop(url, instance, listener, incoming))?;
        }
        Ok((Arc::new(Self { outbox }), received))
    }
}

impl Relay for PgRelay {
    fn send(&self, signal: &Signal) {
        let Ok(text) = serde_json::to_string(signal) else {
            return;
        };
        match self.outbox.try_send(text) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                tracing::warn!(
                    "realtime fan-out queue full; an event did not reach other instances"
                );
            }
            // The publisher thread is gone: the process is stopping.
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    fn name(&self) -> &'static str {
        "postgres"
    }
}

fn listen(url: &str) -> anyhow::Result<PgConnection> {
    let mut conn = PgConnection::establish(url)?;
    diesel::sql_query(format!("LISTEN {CHANNEL}")).execute(&mut conn)?;
    Ok(conn)
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

#[derive(QueryableByName)]
struct Body {
    #[diesel(sql_type = Text)]
    body: String,
}

fn publish_loop(url: String, instance: String, conn: PgConnection, queue: Receiver<String>) {
    let mut conn = Some(conn);
    let mut backoff = Duration::from_millis(100);
    let mut swept = Instant::now();
    loop {
        let first = match queue.recv_timeout(SWEEP_EVERY) {
            Ok(first) => Some(first),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let mut batch: Vec<String> = first.into_iter().collect();
        while batch.len() < BATCH {
            match queue.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let connection = match conn.as_mut() {
            Some(c) => c,
            None => match PgConnection::establish(&url) {
                Ok(c) => {
                    tracing::info!("realtime fan-out: publisher reconnected");
                    backoff = Duration::from_millis(100);
                    conn.insert(c)
                }
                Err(e) => {
                    tracing::warn!(error = %e, dropped = batch.len(), "realtime fan-out: cannot reach the database; events for other instances dropped");
                    thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            },
        };
        if let Err(e) = send_batch(connection, &instance, batch) {
            tracing::warn!(error = %e, "realtime fan-out: publishing failed; events for other instances dropped");
            conn = None;
            continue;
        }
        if swept.elapsed() >= SWEEP_EVERY {
            swept = Instant::now();
            let sweep = diesel::sql_query(format!(
                "DELETE FROM realtime_payloads WHERE created_at < now() - interval '{KEEP_PAYLOADS}'"
            ))
            .execute(connection);
            if let Err(e) = sweep {
                tracing::warn!(error = %e, "realtime fan-out: sweeping old payloads failed");
            }
        }
    }
}

fn send_batch(
    conn: &mut PgConnection,
    instance: &str,
    batch: Vec<String>,
) -> diesel::QueryResult<()> {
    let mut notes = Vec::with_capacity(batch.len());
    for signal in batch {
        let inline = format!(r#"{{"i":"{instance}","e":{signal}}}"#);
        if inline.len() <= MAX_NOTIFY_BYTES {
            notes.push(inline);
            continue;
        }
        let row: Id =
            diesel::sql_query("INSERT INTO realtime_payloads (body) VALUES ($1) RETURNING id")
                .bind::<Text, _>(&signal)
                .get_result(conn)?;
        notes.push(format!(r#"{{"i":"{instance}","r":{}}}"#, row.id));
    }
    diesel::sql_query(format!(
        "SELECT pg_notify('{CHANNEL}', note) FROM unnest($1) WITH ORDINALITY AS n(note, at) ORDER BY at"
    ))
    .bind::<Array<Text>, _>(notes)
    .execute(conn)?;
    Ok(())
}

/// Runs until the receiver is gone (the server stopped).
fn listen_loop(
    url: String,
    instance: String,
    conn: PgConnection,
    incoming: tokio_mpsc::Sender<Signal>,
) {
    let mut conn = Some(conn);
    let mut idle = Duration::from_millis(1);
    let mut backoff = Duration::from_millis(100);
    loop {
        if incoming.is_closed() {
            return;
        }
        let Some(connection) = conn.as_mut() else {
            match listen(&url) {
                Ok(c) => {
                    tracing::info!("realtime fan-out: listener reconnected");
                    conn = Some(c);
                    backoff = Duration::from_millis(100);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "realtime fan-out: cannot LISTEN; retrying");
                    thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
            continue;
        };
        let mut notes = Vec::new();
        let mut broken = None;
        for note in connection.notifications_iter() {
            match note {
                Ok(note) => notes.push(note.payload),
                Err(e) => {
                    broken = Some(e);
                    break;
                }
            }
        }
        let got = !notes.is_empty();
        for note in notes {
            if let Some(signal) = read_note(connection, &instance, &note)
                && incoming.blocking_send(signal).is_err()
            {
                return;
            }
        }
        if let Some(e) = broken {
            tracing::warn!(error = %e, "realtime fan-out: listener connection lost; events from other instances may be missed");
            conn = None;
            continue;
        }
        idle = if got {
            Duration::from_millis(1)
        } else {
            (idle * 2).min(MAX_IDLE_POLL)
        };
        thread::sleep(idle);
    }
}

/// The signal of another instance's notification (None for our own, or nonsense).
fn read_note(conn: &mut PgConnection, instance: &str, note: &str) -> Option<Signal> {
    /// `{"i": <instance>, "e": <signal>}` or `{"i": …, "r": <row id>}`.
    #[derive(serde::Deserialize)]
    struct Note<'a> {
        #[serde(borrow)]
        i: std::borrow::Cow<'a, str>,
        e: Option<Signal>,
        r: Option<i64>,
    }
    let note: Note = serde_json::from_str(note).ok()?;
    if note.i == instance {
        return None;
    }
    if let Some(signal) = note.e {
        return Some(signal);
    }
    let id = note.r?;
    let body: Body = diesel::sql_query("SELECT body FROM realtime_payloads WHERE id = $1")
        .bind::<BigInt, _>(id)
        .get_result(conn)
        .map_err(
            |e| tracing::warn!(error = %e, id, "realtime fan-out: a large event could not be read"),
        )
        .ok()?;
    serde_json::from_str(&body.body).ok()
}
