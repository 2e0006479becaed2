//! Group-chat bots: Slack incoming webhooks, Feishu / Lark custom bots, DingTalk custom robots
//! and WeCom group bots. One attempt is one signed JSON POST to the bot's URL (the
//! subscription's destination address) through the webhook channel's HTTP client, so the same
//! SSRF guard, timeouts and answer limits apply; the platform's reply code then refines the
//! classification (rate limited → retry after a minute, bot gone → dead-letter and disable,
//! anything else → dead-letter).
//!
//! The message is the notification's payload when a subscription template made it text, else
//! the event type and id above the payload. A Feishu or DingTalk bot with signing switched on
//! takes its secret from the subscription's destination header `secret` (never sent as a
//! header).
//!
//! # Layout
//! - [`provider`]: each platform's request format, signature and reply codes.

pub mod provider;
#[cfg(test)]
mod tests;

use std::time::Instant;

use herald_core::Notification;
use herald_core::retry::AttemptOutcome;
use reqwest::header::{HeaderMap, HeaderValue};

pub use provider::Provider;

use super::webhook::{WebhookClient, WebhookConfig};
use super::{AttemptContext, AttemptFuture, AttemptReport, Channel};

/// The destination header that holds a bot's signing secret.
pub const SECRET_HEADER: &str = "secret";

/// A bot channel for one platform.
pub struct BotChannel {
    provider: Provider,
    client: WebhookClient,
}

impl BotChannel {
    /// Builds the channel; `config` is the webhook section (HTTP client, SSRF allow-list).
    pub fn new(provider: Provider, config: &WebhookConfig) -> Result<Self, String> {
        Ok(Self {
            provider,
            client: WebhookClient::new(config)?,
        })
    }

    async fn deliver(&self, n: &Notification, context: AttemptContext<'_>) -> AttemptReport {
        let started = Instant::now();
        let secret = context
            .subscription
            .and_then(|s| s.spec.destination.headers.get(SECRET_HEADER))
            .map(String::as_str);
        let text = provider::message_text(n);
        let request =
            match self
                .provider
                .request(&n.destination, &text, secret, herald_core::time::now_ms())
            {
                Ok(request) => request,
                Err(reason) => {
                    return AttemptReport::without_response(
                        AttemptOutcome::Permanent { reason },
                        started.elapsed(),
                    );
                }
            };
        let mut headers = HeaderMap::new();
        headers.insert(
            reqwest::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        if let Some(traceparent) = n.traceparent.as_deref()
            && let Ok(value) = HeaderValue::from_str(traceparent)
        {
            headers.insert("traceparent", value);
        }
        let mut report = self.client.post(&request.url, headers, request.body).await;
        report.outcome = self
            .provider
            .classify(report.outcome, report.response_body.as_deref());
        report
    }
}

impl Channel for BotChannel {
    fn name(&self) -> &str {
        self.provider.channel()
    }

    fn attempt<'a>(
        &'a self,
        notification: &'a Notification,
        context: AttemptContext<'a>,
    ) -> AttemptFuture<'a> {
        Box::pin(self.deliver(notification, context))
    }
}
