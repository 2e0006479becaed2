//! The webhook channel: one signed HTTP POST per attempt, Standard Webhooks headers
//! (`webhook-id` = the notification id, `webhook-timestamp`, `webhook-signature`), the
//! subscription's own headers, and the source event's `traceparent`.
//!
//! # Layout
//! - [`config`]: the channel's settings.
//! - [`client`]: the HTTP transport and the classification of answers.
//! - [`signing`]: Standard Webhooks `v1` (HMAC-SHA256) and `v1a` (ed25519) signatures.

pub mod client;
pub mod config;
pub mod signing;
#[cfg(test)]
mod tests;

use std::time::Instant;

use herald_core::Notification;
use herald_core::retry::AttemptOutcome;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

pub use client::WebhookClient;
pub use config::WebhookConfig;

use super::{AttemptContext, AttemptFuture, AttemptReport, Channel};

/// Headers a subscription may not set: they belong to the transport or to the signature.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

/// The webhook channel.
pub struct WebhookChannel {
    client: WebhookClient,
    max_payload_bytes: usize,
}

impl WebhookChannel {
    /// Builds the channel.
    pub fn new(config: &WebhookConfig) -> Result<Self, String> {
        Ok(Self {
            client: WebhookClient::new(config)?,
            max_payload_bytes: config.max_payload_bytes,
        })
    }

    async fn deliver(&self, n: &Notification, context: AttemptContext<'_>) -> AttemptReport {
        let started = Instant::now();
        let permanent = |reason: String| {
            AttemptReport::without_response(AttemptOutcome::Permanent { reason }, started.elapsed())
        };
        if n.payload.len() > self.max_payload_bytes {
            return permanent(format!(
                "payload of {} bytes exceeds the limit of {} bytes",
                n.payload.len(),
                self.max_payload_bytes
            ));
        }
        let timestamp = herald_core::time::now_ms() / 1000;
        let mut headers = HeaderMap::new();
        if let Some(subscription) = context.subscription {
            for (name, value) in &subscription.spec.destination.headers {
                if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                    continue;
                }
                match (
                    HeaderName::from_bytes(name.as_bytes()),
                    HeaderValue::from_str(value),
                ) {
                    (Ok(name), Ok(value)) => {
                        headers.insert(name, value);
                    }
                    _ => {
                        return permanent(format!(
                            "the subscription's header {name:?} is not a valid HTTP header"
                        ));
                    }
                }
            }
            match signing::signature_header(
                &subscription.secrets,
                &n.notification_id,
                timestamp,
                n.payload.as_bytes(),
            ) {
                Ok(Some(signature)) => {
                    headers.insert(
                        "webhook-signature",
                        HeaderValue::from_str(&signature).expect("base64 is a valid header"),
                    );
                }
                Ok(None) => {}
                Err(e) => return permanent(e.to_string()),
            }
        }
        let mut set = |name: &'static str, value: &str| match HeaderValue::from_str(value) {
            Ok(value) => {
                headers.insert(name, value);
                Ok(())
            }
            Err(_) => Err(format!("{name} {value:?} is not a valid header value")),
        };
        let required = set("webhook-id", &n.notification_id)
            .and_then(|()| set("webhook-timestamp", &timestamp.to_string()))
            .and_then(|()| set("content-type", &n.content_type));
        if let Err(reason) = required {
            return permanent(reason);
        }
        if let Some(traceparent) = &n.traceparent {
            let _ = set("traceparent", traceparent);
        }
        self.client
            .post(&n.destination, headers, n.payload.clone().into_bytes())
            .await
    }
}

impl Channel for WebhookChannel {
    fn name(&self) -> &str {
        "webhook"
    }

    fn attempt<'a>(
        &'a self,
        notification: &'a Notification,
        context: AttemptContext<'a>,
    ) -> AttemptFuture<'a> {
        Box::pin(self.deliver(notification, context))
    }
}
