//! The email channel: one message per attempt through an SMTP relay (lettre), with a plain
//! text part and an HTML part. The recipient is the subscription's destination address; the
//! subscription's destination headers may set the sender (`from`), a subject template
//! (`subject`) and an HTML template (`html`), both minijinja over `event` (the notification's
//! payload, parsed when it is JSON: the webhook envelope by default) and `notification` (id,
//! event type and id, subscription, app). The text part is the payload itself when a
//! subscription template made it text, else the payload pretty-printed.
//!
//! The relay's answer decides: 2xx delivered; 4xx (mailbox busy, greylisting, rate limits) and
//! connection failures retry; 5xx (no such user, message refused) dead-letter. The
//! `Message-ID` is derived from the notification id, so a redelivered message can be
//! recognised as the same one.
//!
//! # Layout
//! - [`config`]: the relay and the default sender.

pub mod config;
#[cfg(test)]
mod tests;

use std::time::{Duration, Instant};

use herald_core::Notification;
use herald_core::retry::AttemptOutcome;
use lettre::message::{Mailbox, MultiPart, header};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::{Value as Json, json};

pub use config::{EmailConfig, SmtpSecurity};

use super::{AttemptContext, AttemptFuture, AttemptReport, Channel};

/// The default subject when a subscription sets none.
const DEFAULT_SUBJECT: &str = "[Herald] {{ notification.event_type }} {{ notification.event_id }}";

/// The email channel.
pub struct EmailChannel {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    default_from: Mailbox,
    timeout: Duration,
}

impl EmailChannel {
    /// Builds the channel; the relay is connected to at the first attempt.
    pub fn new(config: &EmailConfig) -> Result<Self, String> {
        let default_from: Mailbox = config
            .from
            .parse()
            .map_err(|e| format!("email.from {:?} is not an address: {e}", config.from))?;
        let tls = |required: bool| {
            TlsParameters::new(config.smtp_host.clone())
                .map(|p| {
                    if required {
                        Tls::Required(p)
                    } else {
                        Tls::Wrapper(p)
                    }
                })
                .map_err(|e| format!("TLS for {}: {e}", config.smtp_host))
        };
        let mut builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.smtp_host)
                .port(config.smtp_port)
                .timeout(Some(Duration::from_millis(config.timeout_ms)))
                .pool_config(
                    lettre::transport::smtp::PoolConfig::new().max_size(config.pool_size.max(1)),
                );
        builder = match config.security {
            SmtpSecurity::Starttls => builder.tls(tls(true)?),
            SmtpSecurity::Tls => builder.tls(tls(false)?),
            SmtpSecurity::None => builder.tls(Tls::None),
        };
        if let (Some(user), Some(password)) = (&config.username, &config.password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Ok(Self {
            transport: builder.build(),
            default_from,
            timeout: Duration::from_millis(config.timeout_ms),
        })
    }

    async fn deliver(&self, n: &Notification, context: AttemptContext<'_>) -> AttemptReport {
        let started = Instant::now();
        let headers = context.subscription.map(|s| &s.spec.destination.headers);
        let setting = |name: &str| headers.and_then(|h| h.get(name)).map(String::as_str);
        let message = match compose(
            n,
            &self.default_from,
            setting("from"),
            setting("subject"),
            setting("html"),
        ) {
            Ok(message) => message,
            Err(reason) => {
                return AttemptReport::without_response(
                    AttemptOutcome::Permanent { reason },
                    started.elapsed(),
                );
            }
        };
        let sent = tokio::time::timeout(self.timeout, self.transport.send(message)).await;
        let latency = started.elapsed();
        match sent {
            Ok(Ok(response)) => AttemptReport {
                outcome: AttemptOutcome::Delivered,
                response_code: Some(i32::from(u16::from(response.code()))),
                response_body: Some(response.message().collect::<Vec<_>>().join(" ")),
                latency,
            },
            Ok(Err(error)) => report_error(&error, latency),
            Err(_) => AttemptReport::without_response(
                AttemptOutcome::Retryable {
                    retry_after: None,
                    reason: format!(
                        "the relay did not answer within {} ms",
                        self.timeout.as_millis()
                    ),
                },
                latency,
            ),
        }
    }
}

/// The attempt report of a failed send: the relay's code when it answered.
fn report_error(error: &lettre::transport::smtp::Error, latency: Duration) -> AttemptReport {
    let code = error.status().map(|c| i32::from(u16::from(c)));
    let reason = format!("smtp: {error}");
    let outcome = if error.is_permanent() {
        AttemptOutcome::Permanent { reason }
    } else {
        // Transient (4xx), connection, timeout and TLS failures pass or not by waiting.
        AttemptOutcome::Retryable {
            retry_after: None,
            reason,
        }
    };
    AttemptReport {
        outcome,
        response_code: code,
        response_body: None,
        latency,
    }
}

/// The template context: the payload as `event` (parsed when JSON) and the notification.
fn context(n: &Notification) -> Json {
    let event =
        serde_json::from_str(&n.payload).unwrap_or_else(|_| Json::String(n.payload.clone()));
    json!({
        "event": event,
        "notification": {
            "id": n.notification_id,
            "event_id": n.event_id,
            "event_type": n.event_type,
            "subscription_id": n.subscription_id,
            "app_id": n.app_id,
        },
    })
}

fn render(template: &str, context: &Json, what: &str, auto_escape: bool) -> Result<String, String> {
    let mut env = minijinja::Environment::new();
    env.set_auto_escape_callback(move |_| {
        if auto_escape {
            minijinja::AutoEscape::Html
        } else {
            minijinja::AutoEscape::None
        }
    });
    env.render_str(template, context)
        .map_err(|e| format!("the {what} template failed: {e}"))
}

/// The message of a notification.
pub fn compose(
    n: &Notification,
    default_from: &Mailbox,
    from: Option<&str>,
    subject: Option<&str>,
    html: Option<&str>,
) -> Result<Message, String> {
    let to: Mailbox = n
        .destination
        .parse()
        .map_err(|e| format!("{:?} is not an email address: {e}", n.destination))?;
    let from: Mailbox = match from {
        Some(from) => from
            .parse()
            .map_err(|e| format!("the sender {from:?} is not an address: {e}"))?,
        None => default_from.clone(),
    };
    let context = context(n);
    let subject = render(
        subject.unwrap_or(DEFAULT_SUBJECT),
        &context,
        "subject",
        false,
    )?
    .replace(['\r', '\n'], " ");
    let text = if n.content_type.starts_with("text/") {
        n.payload.clone()
    } else {
        serde_json::from_str::<Json>(&n.payload)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or_else(|| n.payload.clone())
    };
    let html = match html {
        Some(template) => render(template, &context, "html", true)?,
        None => format!(
            "<pre>{}</pre>",
            text.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
        ),
    };
    let domain = from.email.domain().to_owned();
    Message::builder()
        .from(from)
        .to(to)
        .subject(subject)
        .message_id(Some(format!("<{}@{domain}>", n.notification_id)))
        .header(NotificationIdHeader(n.notification_id.clone()))
        .multipart(MultiPart::alternative_plain_html(text, html))
        .map_err(|e| format!("building the message: {e}"))
}

/// `X-Herald-Notification-Id`: lets receivers and tests find the notification of a message.
#[derive(Clone)]
struct NotificationIdHeader(String);

impl header::Header for NotificationIdHeader {
    fn name() -> header::HeaderName {
        header::HeaderName::new_from_ascii_str("X-Herald-Notification-Id")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self(s.to_owned()))
    }

    fn display(&self) -> header::HeaderValue {
        header::HeaderValue::new(Self::name(), self.0.clone())
    }
}

impl Channel for EmailChannel {
    fn name(&self) -> &str {
        "email"
    }

    fn attempt<'a>(
        &'a self,
        notification: &'a Notification,
        context: AttemptContext<'a>,
    ) -> AttemptFuture<'a> {
        Box::pin(self.deliver(notification, context))
    }
}
