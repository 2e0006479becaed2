//! The delivery log: `herald.attempts` materialized into SQLite so the API can filter by app,
//! subscription, notification, status and time and page through the answer, with attempts
//! older than the retention removed. The same database keeps the ingest endpoint's
//! idempotency keys.
//!
//! The log is rebuilt from the topic (read from its beginning) at each start; with a database
//! file it survives restarts too, and re-reading only rewrites rows with what they already
//! hold (rows are keyed by attempt id).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use herald_contract::RecordCodec;
use herald_core::attempt::{AttemptStatus, DeliveryAttempt};
use herald_kafka::{KafkaConfig, TopicFollower};
use rusqlite::{Connection, OptionalExtension, params};

use crate::AdminError;

/// What the delivery log is asked for; every given condition must hold.
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    /// Only this app's attempts.
    pub app_id: Option<String>,
    /// Only this subscription's.
    pub subscription_id: Option<String>,
    /// Only this notification's.
    pub notification_id: Option<String>,
    /// Only attempts with this outcome.
    pub status: Option<AttemptStatus>,
    /// Only attempts started at or after this time, epoch milliseconds.
    pub since_ms: Option<i64>,
    /// Only attempts started before this time, epoch milliseconds.
    pub until_ms: Option<i64>,
    /// Continue after this position (the `next_cursor` of the previous page).
    pub cursor: Option<i64>,
    /// At most this many.
    pub limit: usize,
}

/// The delivery log.
pub struct DeliveryLog {
    db: Mutex<Connection>,
    retention: Duration,
}

fn status_text(status: AttemptStatus) -> &'static str {
    match status {
        AttemptStatus::Succeeded => "SUCCEEDED",
        AttemptStatus::RetryScheduled => "RETRY_SCHEDULED",
        AttemptStatus::DeadLettered => "DEAD_LETTERED",
        AttemptStatus::Disabled => "DISABLED",
    }
}

impl DeliveryLog {
    /// Opens (or creates) the log in `file`, or in memory.
    pub fn open(file: Option<&Path>, retention: Duration) -> rusqlite::Result<Self> {
        let db = match file {
            Some(path) => Connection::open(path)?,
            None => Connection::open_in_memory()?,
        };
        db.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             CREATE TABLE IF NOT EXISTS attempts (
                 position INTEGER PRIMARY KEY AUTOINCREMENT,
                 attempt_id TEXT NOT NULL UNIQUE,
                 notification_id TEXT NOT NULL,
                 subscription_id TEXT NOT NULL,
                 app_id TEXT NOT NULL,
                 status TEXT NOT NULL,
                 started_at INTEGER NOT NULL,
                 record TEXT NOT NULL);
             CREATE INDEX IF NOT EXISTS attempts_app ON attempts (app_id, position);
             CREATE INDEX IF NOT EXISTS attempts_subscription ON attempts (subscription_id, position);
             CREATE INDEX IF NOT EXISTS attempts_notification ON attempts (notification_id);
             CREATE INDEX IF NOT EXISTS attempts_started ON attempts (started_at);
             CREATE TABLE IF NOT EXISTS idempotency (
                 scope TEXT NOT NULL,
                 key TEXT NOT NULL,
                 response TEXT NOT NULL,
                 created_at INTEGER NOT NULL,
                 PRIMARY KEY (scope, key));",
        )?;
        Ok(Self {
            db: Mutex::new(db),
            retention,
        })
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic mid-statement leaves SQLite itself consistent.
        self.db.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds (or rewrites) attempts, in one transaction.
    pub fn insert(&self, attempts: &[DeliveryAttempt]) -> rusqlite::Result<()> {
        let mut db = self.db();
        let tx = db.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO attempts (attempt_id, notification_id, subscription_id, app_id, status, started_at, record)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (attempt_id) DO UPDATE SET status = excluded.status,
                     started_at = excluded.started_at, record = excluded.record",
            )?;
            for a in attempts {
                let record = serde_json::to_string(a).expect("an attempt serializes");
                insert.execute(params![
                    a.attempt_id,
                    a.notification_id,
                    a.subscription_id,
                    a.app_id,
                    status_text(a.status),
                    a.started_at,
                    record
                ])?;
            }
        }
        tx.commit()
    }

    /// Removes attempts and idempotency answers older than the retention; returns how many
    /// attempts. (An idempotency key retried after the retention produces again: clients
    /// retry within minutes, not days.)
    pub fn prune(&self, now_ms: i64) -> rusqlite::Result<usize> {
        let horizon = now_ms - self.retention.as_millis() as i64;
        let db = self.db();
        db.execute(
            "DELETE FROM idempotency WHERE created_at < ?1",
            params![horizon],
        )?;
        db.execute(
            "DELETE FROM attempts WHERE started_at < ?1",
            params![horizon],
        )
    }

    /// One page of attempts, newest first, and the cursor of the next page if there is one.
    pub fn query(&self, q: &LogQuery) -> rusqlite::Result<(Vec<DeliveryAttempt>, Option<i64>)> {
        let db = self.db();
        let mut statement = db.prepare_cached(
            "SELECT position, record FROM attempts
             WHERE (?1 IS NULL OR app_id = ?1)
               AND (?2 IS NULL OR subscription_id = ?2)
               AND (?3 IS NULL OR notification_id = ?3)
               AND (?4 IS NULL OR status = ?4)
               AND (?5 IS NULL OR started_at >= ?5)
               AND (?6 IS NULL OR started_at < ?6)
               AND (?7 IS NULL OR position < ?7)
             ORDER BY position DESC LIMIT ?8",
        )?;
        let rows = statement.query_map(
            params![
                q.app_id,
                q.subscription_id,
                q.notification_id,
                q.status.map(status_text),
                q.since_ms,
                q.until_ms,
                q.cursor,
                (q.limit + 1) as i64
            ],
            |row| Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?)),
        )?;
        let mut page = Vec::new();
        let mut positions = Vec::new();
        for row in rows {
            let (position, record) = row?;
            if let Ok(attempt) = serde_json::from_str::<DeliveryAttempt>(&record) {
                page.push(attempt);
                positions.push(position);
            }
        }
        let next = if page.len() > q.limit {
            page.truncate(q.limit);
            positions.get(q.limit - 1).copied()
        } else {
            None
        };
        Ok((page, next))
    }

    /// The answer stored for an idempotency key, if the key was used before.
    pub fn idempotent_answer(&self, scope: &str, key: &str) -> rusqlite::Result<Option<String>> {
        self.db()
            .query_row(
                "SELECT response FROM idempotency WHERE scope = ?1 AND key = ?2",
                params![scope, key],
                |row| row.get(0),
            )
            .optional()
    }

    /// Stores the answer given for an idempotency key.
    pub fn remember_answer(&self, scope: &str, key: &str, answer: &str) -> rusqlite::Result<()> {
        self.db()
            .execute(
                "INSERT OR REPLACE INTO idempotency (scope, key, response, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![scope, key, answer, herald_core::time::now_ms()],
            )
            .map(|_| ())
    }
}

/// Reads `topic` (`herald.attempts`) from its beginning into `log` on a thread of its own,
/// pruning old attempts once a minute, until `stop` is set.
pub fn follow(
    kafka: &KafkaConfig,
    topic: &str,
    log: Arc<DeliveryLog>,
    stop: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<()>, AdminError> {
    let mut follower = TopicFollower::open(kafka, topic)?;
    let codec = RecordCodec::builtin("dev.herald.DeliveryAttempt");
    let handle = std::thread::Builder::new()
        .name("delivery log".to_owned())
        .spawn(move || {
            let mut pruned = Instant::now();
            while !stop.load(Ordering::SeqCst) {
                let records = match follower.poll(5_000, Duration::from_millis(100)) {
                    Ok(records) => records,
                    Err(error) => {
                        tracing::warn!(%error, "reading attempts failed; retrying");
                        std::thread::sleep(Duration::from_secs(1));
                        continue;
                    }
                };
                let attempts: Vec<DeliveryAttempt> = records
                    .iter()
                    .filter_map(|r| {
                        let decoded = codec.decode::<DeliveryAttempt>(r.value.as_deref()?);
                        if let Err(error) = &decoded {
                            tracing::warn!(%error, offset = r.offset, "attempt record skipped in the log");
                        }
                        decoded.ok()
                    })
                    .collect();
                if !attempts.is_empty()
                    && let Err(error) = log.insert(&attempts)
                {
                    tracing::error!(%error, "writing the delivery log failed");
                }
                if pruned.elapsed() > Duration::from_secs(60) {
                    pruned = Instant::now();
                    if let Err(error) = log.prune(herald_core::time::now_ms()) {
                        tracing::error!(%error, "pruning the delivery log failed");
                    }
                }
            }
        })
        .map_err(|e| AdminError::Start(e.to_string()))?;
    Ok(handle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(n: i32, app: &str, status: AttemptStatus, started_at: i64) -> DeliveryAttempt {
        DeliveryAttempt {
            attempt_id: DeliveryAttempt::id_for(&format!("n{n}"), 1),
            notification_id: format!("n{n}"),
            subscription_id: format!("s-{app}"),
            app_id: app.to_owned(),
            channel: "webhook".to_owned(),
            attempt: 1,
            status,
            started_at,
            latency_ms: 3,
            response_code: Some(200),
            response_body: None,
            error: None,
            next_attempt_at: None,
        }
    }

    #[test]
    fn pages_filter_and_retention() {
        let log = DeliveryLog::open(None, Duration::from_millis(1_000)).unwrap();
        let all: Vec<_> = (0..25)
            .map(|n| {
                let app = if n % 2 == 0 { "a" } else { "b" };
                let status = if n % 5 == 0 {
                    AttemptStatus::DeadLettered
                } else {
                    AttemptStatus::Succeeded
                };
                attempt(n, app, status, 10_000 + i64::from(n))
            })
            .collect();
        log.insert(&all).unwrap();
        // Re-reading the topic rewrites rows; it does not add any.
        log.insert(&all[..3]).unwrap();

        let mut query = LogQuery {
            app_id: Some("a".into()),
            limit: 5,
            ..LogQuery::default()
        };
        let mut seen = Vec::new();
        loop {
            let (page, next) = log.query(&query).unwrap();
            assert!(page.len() <= 5);
            seen.extend(page.into_iter().map(|a| a.notification_id));
            match next {
                Some(cursor) => query.cursor = Some(cursor),
                None => break,
            }
        }
        let want: Vec<String> = (0..25)
            .rev()
            .filter(|n| n % 2 == 0)
            .map(|n| format!("n{n}"))
            .collect();
        assert_eq!(seen, want, "every attempt of app a once, newest first");

        let dead = LogQuery {
            status: Some(AttemptStatus::DeadLettered),
            since_ms: Some(10_005),
            limit: 100,
            ..LogQuery::default()
        };
        let ids: Vec<_> = log
            .query(&dead)
            .unwrap()
            .0
            .into_iter()
            .map(|a| a.notification_id)
            .collect();
        assert_eq!(ids, ["n20", "n15", "n10", "n5"]);

        assert_eq!(
            log.prune(11_010).unwrap(),
            10,
            "started before 10_010 are gone"
        );
        let rest = log
            .query(&LogQuery {
                limit: 100,
                ..LogQuery::default()
            })
            .unwrap()
            .0;
        assert_eq!(rest.len(), 15);
    }

    #[test]
    fn idempotency_answers_are_kept_per_scope_until_the_retention() {
        let log = DeliveryLog::open(None, Duration::from_secs(1)).unwrap();
        assert_eq!(log.idempotent_answer("op", "k1").unwrap(), None);
        log.remember_answer("op", "k1", "{\"id\":1}").unwrap();
        log.prune(herald_core::time::now_ms()).unwrap();
        assert!(
            log.idempotent_answer("op", "k1").unwrap().is_some(),
            "still within the retention"
        );
        assert_eq!(
            log.idempotent_answer("op", "k1").unwrap().as_deref(),
            Some("{\"id\":1}")
        );
        assert_eq!(log.idempotent_answer("other", "k1").unwrap(), None);
        log.prune(herald_core::time::now_ms() + 2_000).unwrap();
        assert_eq!(
            log.idempotent_answer("op", "k1").unwrap(),
            None,
            "pruned after it"
        );
    }
}
