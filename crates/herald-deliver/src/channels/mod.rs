//! Channels: each performs exactly one attempt of one notification and classifies what
//! happened. Retries, dead letters, limits and commits belong to the worker, so every channel
//! shares one set of semantics.
//!
//! Every channel is a folder of the same shape: `mod.rs` (the channel), `config.rs` (its
//! settings), `client.rs` (the transport), `tests.rs`; the bot channels share the webhook
//! channel's settings and transport and add `provider.rs` (each platform's format and codes).

pub mod bot;
pub mod email;
pub mod http;
pub mod sms;
pub mod webhook;
pub mod wechat;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use herald_core::Notification;
use herald_core::retry::AttemptOutcome;

use crate::state::SubscriptionView;

/// What one attempt came to, with what the receiver said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptReport {
    /// The classification the worker acts on.
    pub outcome: AttemptOutcome,
    /// The receiver's status code, if it answered.
    pub response_code: Option<i32>,
    /// The start of its answer.
    pub response_body: Option<String>,
    /// How long the attempt took.
    pub latency: Duration,
}

impl AttemptReport {
    /// A report for an attempt that never reached the receiver.
    pub fn without_response(outcome: AttemptOutcome, latency: Duration) -> Self {
        Self {
            outcome,
            response_code: None,
            response_body: None,
            latency,
        }
    }
}

/// Everything a channel may need besides the notification itself.
pub struct AttemptContext<'a> {
    /// The notification's subscription, when it is known.
    pub subscription: Option<&'a SubscriptionView>,
    /// The 1-based number of this attempt.
    pub attempt: i32,
}

/// A boxed future, so the worker can hold any channel behind one type.
pub type AttemptFuture<'a> = Pin<Box<dyn Future<Output = AttemptReport> + Send + 'a>>;

/// A delivery channel.
pub trait Channel: Send + Sync {
    /// The channel's name, as in `herald.notify.<name>`.
    fn name(&self) -> &str;
    /// Makes one attempt.
    fn attempt<'a>(
        &'a self,
        notification: &'a Notification,
        context: AttemptContext<'a>,
    ) -> AttemptFuture<'a>;
}

/// A notification as text, for channels that send text (bots, SMS): its payload when a
/// subscription template made it text, else the event type and id above the payload.
pub fn notification_text(n: &Notification) -> String {
    if n.content_type.starts_with("text/") {
        n.payload.clone()
    } else {
        format!("{} ({})\n{}", n.event_type, n.event_id, n.payload)
    }
}

/// The fields a provider's message template is filled with (Aliyun SMS, WeChat): the object a
/// subscription template rendered, or the event's `data` (the default payload is the event
/// envelope); scalar values as text, nested values left out. `who` names the provider in errors.
pub fn template_fields(n: &Notification, who: &str) -> Result<Vec<(String, String)>, String> {
    use serde_json::Value as Json;
    let payload: Json = serde_json::from_str(&n.payload)
        .map_err(|_| format!("{who} fills templates from JSON: the payload is not JSON"))?;
    let object = match payload.get("data") {
        Some(data @ Json::Object(_)) if payload.get("type").is_some() => data,
        _ => &payload,
    };
    let Json::Object(fields) = object else {
        return Err(format!(
            "{who} fills templates from an object: the payload is not one"
        ));
    };
    Ok(fields
        .iter()
        .filter(|(_, v)| !v.is_object() && !v.is_array())
        .map(|(k, v)| {
            let text = match v {
                Json::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), text)
        })
        .collect())
}

/// An outcome's kind, for the channels' classification tables in tests.
#[cfg(test)]
pub(crate) fn outcome_kind(outcome: &AttemptOutcome) -> &'static str {
    match outcome {
        AttemptOutcome::Delivered => "delivered",
        AttemptOutcome::Retryable { .. } => "retry",
        AttemptOutcome::Permanent { .. } => "dead-letter",
        AttemptOutcome::Gone { .. } => "gone",
    }
}
