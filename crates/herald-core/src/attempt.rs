//! Delivery attempts: what one attempt of one notification came to, as written to
//! `herald.attempts` (field for field the `dev.herald.DeliveryAttempt` Avro record).

use serde::{Deserialize, Serialize};

/// What came of an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum AttemptStatus {
    /// The receiver accepted it.
    Succeeded,
    /// It failed and waits in a retry tier.
    RetryScheduled,
    /// It failed for good and went to the channel's dead-letter topic.
    DeadLettered,
    /// It was not attempted because its subscription is disabled (or gone).
    Disabled,
}

/// One delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeliveryAttempt {
    /// Unique id of the attempt: the notification id and the attempt number.
    pub attempt_id: String,
    /// The notification attempted.
    pub notification_id: String,
    /// Its subscription.
    pub subscription_id: String,
    /// The subscription's app.
    pub app_id: String,
    /// The channel.
    pub channel: String,
    /// 1-based attempt number.
    pub attempt: i32,
    /// The outcome.
    pub status: AttemptStatus,
    /// When it started, epoch milliseconds.
    #[serde(deserialize_with = "crate::time::epoch_ms")]
    pub started_at: i64,
    /// How long it took, milliseconds.
    pub latency_ms: i64,
    /// The receiver's status code, if it answered.
    pub response_code: Option<i32>,
    /// The start of the receiver's answer, truncated.
    pub response_body: Option<String>,
    /// Why it failed; `None` on success.
    pub error: Option<String>,
    /// When the next attempt is due, epoch milliseconds, if one is scheduled.
    #[serde(default, deserialize_with = "crate::time::optional_epoch_ms")]
    pub next_attempt_at: Option<i64>,
}

impl DeliveryAttempt {
    /// The id of attempt `attempt` of `notification_id`: stable, so an attempt re-made after
    /// a crash carries the same id and readers can tell it is the same attempt.
    pub fn id_for(notification_id: &str, attempt: i32) -> String {
        format!("{notification_id}.{attempt}")
    }
}
