//! Notifications: one event for one subscription, as the router writes it to
//! `herald.notify.<channel>` and the delivery services read it.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The namespace of Herald's name-based (v5) notification ids. Changing it would change every
/// id and break receivers' deduplication, so it is fixed forever.
const NOTIFICATION_NAMESPACE: Uuid = Uuid::from_u128(0x6b1d_3c5e_8f7a_4e2b_9c1d_0a5f_3e7b_2d41);

/// The id of the notification of `event_id` for `subscription_id`: the same pair always gives
/// the same id, so a retry, a redelivery after a crash and a replay carry the same
/// `webhook-id` and receivers can deduplicate. Shaped like Standard Webhooks' `msg_…` ids.
pub fn notification_id(event_id: &str, subscription_id: &str) -> String {
    // The separator cannot occur in either part's length prefix, so ("a", "bc") and
    // ("ab", "c") never collide.
    let name = format!("{}:{event_id}{subscription_id}", event_id.len());
    format!(
        "msg_{}",
        Uuid::new_v5(&NOTIFICATION_NAMESPACE, name.as_bytes()).simple()
    )
}

/// A notification, field for field the `dev.herald.Notification` Avro record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Notification {
    /// [`notification_id`] of (event, subscription).
    pub notification_id: String,
    /// The source event's id.
    pub event_id: String,
    /// The source event's type.
    pub event_type: String,
    /// The source event's source.
    pub event_source: String,
    /// When the event happened, epoch milliseconds.
    #[serde(deserialize_with = "crate::time::epoch_ms")]
    pub event_time: i64,
    /// The matched subscription.
    pub subscription_id: String,
    /// The app that owns the subscription.
    pub app_id: String,
    /// The channel.
    pub channel: String,
    /// The address to deliver to.
    pub destination: String,
    /// Set when the subscription asks for per-key ordering: deliveries with the same key go
    /// one at a time, in order.
    pub ordering_key: Option<String>,
    /// The body to deliver, already transformed.
    pub payload: String,
    /// The body's media type.
    pub content_type: String,
    /// Attempts made before this record was written.
    pub attempt: i32,
    /// When the router created it, epoch milliseconds.
    #[serde(deserialize_with = "crate::time::epoch_ms")]
    pub created_at: i64,
    /// The W3C trace context of the source event.
    pub traceparent: Option<String>,
}

impl Notification {
    /// The Kafka key of the notification: its destination, plus the ordering key when the
    /// subscription asks for order, so that one endpoint's (or one entity's) deliveries share
    /// a partition and a lane.
    pub fn record_key(&self) -> String {
        match &self.ordering_key {
            None => self.destination.clone(),
            Some(key) => format!("{}|{key}", self.destination),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_distinct() {
        let id = notification_id("evt-1", "sub-1");
        assert_eq!(id, notification_id("evt-1", "sub-1"));
        assert!(id.starts_with("msg_") && id.len() == 36, "{id}");
        assert_ne!(id, notification_id("evt-1", "sub-2"));
        assert_ne!(id, notification_id("evt-2", "sub-1"));
        assert_ne!(notification_id("a", "bc"), notification_id("ab", "c"));
    }
}
