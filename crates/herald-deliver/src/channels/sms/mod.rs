//! The SMS channel: one text message per attempt through a provider's HTTP API, signed the way
//! the provider documents, with the provider's error codes classified (throttled → retry,
//! invalid or unreachable number → dead-letter).
//!
//! The recipient is the subscription's destination address (a phone number). Aliyun sends an
//! approved template (`TemplateCode` = the destination's template id) filled with parameters:
//! the event's `data` by default, or the object a subscription template rendered. Twilio
//! sends text: the payload when a template made it text, else the event type and id above it.
//! The notification id travels as Aliyun's `OutId`, for reconciliation.
//!
//! # Layout
//! - [`config`]: the provider and its credentials.
//! - [`aliyun`]: Alibaba Cloud `SendSms`.
//! - [`twilio`]: Twilio `Messages`.

pub mod aliyun;
pub mod config;
#[cfg(test)]
mod tests;
pub mod twilio;

use herald_core::Notification;
use reqwest::header::HeaderMap;

pub use config::{SmsConfig, SmsProvider};

use super::webhook::{WebhookClient, WebhookConfig};
use super::{AttemptContext, AttemptFuture, AttemptReport, Channel};

/// A request to a provider, ready to send.
#[derive(Debug, Clone)]
pub struct ProviderRequest {
    /// Where to POST.
    pub url: String,
    /// Its headers (content type, authorization).
    pub headers: HeaderMap,
    /// The form-encoded body.
    pub body: Vec<u8>,
}

/// The SMS channel.
pub struct SmsChannel {
    config: SmsConfig,
    client: WebhookClient,
}

impl SmsChannel {
    /// Builds the channel, refusing a configuration that lacks the provider's credentials;
    /// `http` is the webhook section (HTTP client settings, SSRF allow-list).
    pub fn new(config: &SmsConfig, http: &WebhookConfig) -> Result<Self, String> {
        let missing = |name: &str| format!("sms.{name} is required for {:?}", config.provider);
        match config.provider {
            SmsProvider::Aliyun => {
                for (name, value) in [
                    ("access_key_id", &config.access_key_id),
                    ("access_key_secret", &config.access_key_secret),
                    ("sign_name", &config.sign_name),
                ] {
                    value.as_ref().ok_or_else(|| missing(name))?;
                }
            }
            SmsProvider::Twilio => {
                for (name, value) in [
                    ("account_sid", &config.account_sid),
                    ("auth_token", &config.auth_token),
                    ("from", &config.from),
                ] {
                    value.as_ref().ok_or_else(|| missing(name))?;
                }
            }
        }
        Ok(Self {
            config: config.clone(),
            client: WebhookClient::new(http)?,
        })
    }

    async fn deliver(&self, n: &Notification, context: AttemptContext<'_>) -> AttemptReport {
        let started = std::time::Instant::now();
        let template = context
            .subscription
            .and_then(|s| s.spec.destination.template_id.as_deref());
        let request = match self.config.provider {
            SmsProvider::Aliyun => aliyun::request(&self.config, n, template),
            SmsProvider::Twilio => twilio::request(&self.config, n),
        };
        let request = match request {
            Ok(request) => request,
            Err(reason) => {
                return AttemptReport::without_response(
                    herald_core::retry::AttemptOutcome::Permanent { reason },
                    started.elapsed(),
                );
            }
        };
        let mut report = self
            .client
            .post(&request.url, request.headers, request.body)
            .await;
        report.outcome = match self.config.provider {
            SmsProvider::Aliyun => {
                aliyun::classify(report.outcome, report.response_body.as_deref())
            }
            SmsProvider::Twilio => {
                twilio::classify(report.outcome, report.response_body.as_deref())
            }
        };
        report
    }
}

impl Channel for SmsChannel {
    fn name(&self) -> &str {
        "sms"
    }

    fn attempt<'a>(
        &'a self,
        notification: &'a Notification,
        context: AttemptContext<'a>,
    ) -> AttemptFuture<'a> {
        Box::pin(self.deliver(notification, context))
    }
}
