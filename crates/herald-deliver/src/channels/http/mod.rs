//! The generic HTTP channel: any HTTP API described in configuration instead of code — Weibo's
//! messaging API, a company's in-house IM. A request template (method, URL, headers, body, all
//! minijinja), an optional signing recipe, and rules saying which answers mean success, retry or
//! failure turn each notification into one request.
//!
//! Templates see `notification` (`id`, `event_id`, `event_type`, `subscription_id`, `app_id`,
//! `destination`, `payload`), `event` (the payload, parsed when it is JSON), `timestamp` (Unix
//! seconds) and `timestamp_ms`; the signing message also sees `body` (the rendered body).
//!
//! # Layout
//! - [`config`]: the request template, the signing recipe and the answer rules.

pub mod config;
#[cfg(test)]
mod tests;

use std::time::{Duration, Instant};

use base64::Engine;
use herald_core::Notification;
use herald_core::retry::AttemptOutcome;
use hmac::{Hmac, Mac};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value as Json, json};

pub use config::{Encoding, HttpTemplate, Rules, Signing, SigningAlgorithm};

use super::webhook::{WebhookClient, WebhookConfig};
use super::{AttemptContext, AttemptFuture, AttemptReport, Channel};

/// A request rendered from the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The method.
    pub method: reqwest::Method,
    /// The URL, signature query parameter included.
    pub url: String,
    /// The headers, signature header included.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: String,
}

/// The generic HTTP channel.
pub struct HttpChannel {
    template: HttpTemplate,
    environment: minijinja::Environment<'static>,
    client: WebhookClient,
}

impl HttpChannel {
    /// Builds the channel, compiling every template now so that a mistake is refused at
    /// start with the template's name; `http` is the webhook section (HTTP client settings,
    /// SSRF allow-list).
    pub fn new(template: &HttpTemplate, http: &WebhookConfig) -> Result<Self, String> {
        let environment = environment(template)?;
        reqwest::Method::from_bytes(template.method.as_bytes())
            .map_err(|_| format!("http.method {:?} is not an HTTP method", template.method))?;
        Ok(Self {
            template: template.clone(),
            environment,
            client: WebhookClient::new(http)?,
        })
    }

    async fn deliver(&self, n: &Notification) -> AttemptReport {
        let started = Instant::now();
        let rendered = match render(
            &self.template,
            &self.environment,
            n,
            herald_core::time::now_ms(),
        ) {
            Ok(rendered) => rendered,
            Err(reason) => {
                return AttemptReport::without_response(
                    AttemptOutcome::Permanent { reason },
                    started.elapsed(),
                );
            }
        };
        let mut headers = HeaderMap::new();
        for (name, value) in &rendered.headers {
            match (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                (Ok(name), Ok(value)) => {
                    headers.insert(name, value);
                }
                _ => {
                    return AttemptReport::without_response(
                        AttemptOutcome::Permanent {
                            reason: format!("header {name:?} rendered to an invalid value"),
                        },
                        started.elapsed(),
                    );
                }
            }
        }
        let mut report = self
            .client
            .request(
                rendered.method,
                &rendered.url,
                headers,
                rendered.body.into_bytes(),
            )
            .await;
        report.outcome = self.template.rules.classify(
            report.outcome,
            report.response_code,
            report.response_body.as_deref(),
        );
        report
    }
}

/// Compiles the template's parts, named so that errors say which one failed.
pub fn environment(template: &HttpTemplate) -> Result<minijinja::Environment<'static>, String> {
    let mut env = minijinja::Environment::new();
    let mut add = |name: String, source: &str| {
        env.add_template_owned(name.clone(), source.to_owned())
            .map_err(|e| format!("http.{name}: {e}"))
    };
    add("url".into(), &template.url)?;
    add(
        "body".into(),
        template
            .body
            .as_deref()
            .unwrap_or("{{ notification.payload }}"),
    )?;
    for (name, value) in &template.headers {
        add(format!("headers.{name}"), value)?;
    }
    if let Some(signing) = &template.signing {
        add("signing.message".into(), &signing.message)?;
    }
    Ok(env)
}

/// Renders the request for `n` at `now_ms`.
pub fn render(
    template: &HttpTemplate,
    env: &minijinja::Environment<'static>,
    n: &Notification,
    now_ms: i64,
) -> Result<Rendered, String> {
    let event: Json =
        serde_json::from_str(&n.payload).unwrap_or_else(|_| Json::String(n.payload.clone()));
    let mut context = json!({
        "notification": {
            "id": n.notification_id,
            "event_id": n.event_id,
            "event_type": n.event_type,
            "subscription_id": n.subscription_id,
            "app_id": n.app_id,
            "destination": n.destination,
            "payload": n.payload,
        },
        "event": event,
        "timestamp": now_ms / 1000,
        "timestamp_ms": now_ms,
    });
    let run = |name: &str, context: &Json| {
        env.get_template(name)
            .and_then(|t| t.render(context))
            .map_err(|e| format!("rendering http.{name}: {e}"))
    };
    let body = run("body", &context)?;
    let mut url = run("url", &context)?;
    let mut headers = Vec::new();
    for name in template.headers.keys() {
        headers.push((name.clone(), run(&format!("headers.{name}"), &context)?));
    }
    if let Some(signing) = &template.signing {
        context["body"] = Json::String(body.clone());
        let message = run("signing.message", &context)?;
        let signature = format!("{}{}", signing.prefix, sign(signing, message.as_bytes()));
        if let Some(header) = &signing.header {
            headers.push((header.clone(), signature.clone()));
        }
        if let Some(parameter) = &signing.query {
            let mut parsed =
                url::Url::parse(&url).map_err(|e| format!("http.url rendered {url:?}: {e}"))?;
            parsed.query_pairs_mut().append_pair(parameter, &signature);
            url = parsed.into();
        }
    }
    Ok(Rendered {
        method: reqwest::Method::from_bytes(template.method.as_bytes())
            .map_err(|_| format!("http.method {:?} is not an HTTP method", template.method))?,
        url,
        headers,
        body,
    })
}

/// The signature of `message` by `signing`'s recipe.
pub fn sign(signing: &Signing, message: &[u8]) -> String {
    let bytes = match signing.algorithm {
        SigningAlgorithm::HmacSha256 => {
            let mut mac = Hmac::<sha2::Sha256>::new_from_slice(signing.secret.as_bytes())
                .expect("HMAC takes keys of any length");
            mac.update(message);
            mac.finalize().into_bytes().to_vec()
        }
        SigningAlgorithm::HmacSha1 => {
            let mut mac = Hmac::<sha1::Sha1>::new_from_slice(signing.secret.as_bytes())
                .expect("HMAC takes keys of any length");
            mac.update(message);
            mac.finalize().into_bytes().to_vec()
        }
    };
    match signing.encoding {
        Encoding::Hex => bytes.iter().map(|b| format!("{b:02x}")).collect(),
        Encoding::Base64 => base64::engine::general_purpose::STANDARD.encode(bytes),
    }
}

impl Rules {
    /// What an answer means by these rules. Answers that never arrived (timeouts,
    /// connection failures, refused destinations) keep the transport's classification.
    pub fn classify(
        &self,
        transport: AttemptOutcome,
        status: Option<i32>,
        body: Option<&str>,
    ) -> AttemptOutcome {
        let Some(status) = status else {
            return transport;
        };
        let status = status as u16;
        let value = self.json_pointer.as_deref().and_then(|pointer| {
            let reply: Json = serde_json::from_str(body?).ok()?;
            reply.pointer(pointer).cloned()
        });
        let value_text = value.as_ref().map(|v| match v {
            Json::String(s) => s.clone(),
            other => other.to_string(),
        });
        let reason = format!(
            "HTTP {status}{}",
            value_text
                .as_deref()
                .map(|v| format!(", {} = {v}", self.json_pointer.as_deref().unwrap_or("")))
                .unwrap_or_default()
        );
        let in_ranges = |ranges: &[String]| ranges.iter().any(|r| status_in(r, status));
        let value_in = |values: &[String]| {
            value_text
                .as_deref()
                .is_some_and(|v| values.iter().any(|w| w == v))
        };
        if value_in(&self.retry_values) {
            return AttemptOutcome::Retryable {
                retry_after: self.retry_after_ms.map(Duration::from_millis),
                reason,
            };
        }
        if in_ranges(&self.success_status)
            && (self.success_values.is_empty() || value_in(&self.success_values))
        {
            return AttemptOutcome::Delivered;
        }
        if in_ranges(&self.retry_status) {
            return AttemptOutcome::Retryable {
                retry_after: self.retry_after_ms.map(Duration::from_millis),
                reason,
            };
        }
        AttemptOutcome::Permanent { reason }
    }
}

/// Whether `status` is in `range`: `200`, or `500-599`.
fn status_in(range: &str, status: u16) -> bool {
    match range.split_once('-') {
        Some((low, high)) => match (low.trim().parse::<u16>(), high.trim().parse::<u16>()) {
            (Ok(low), Ok(high)) => (low..=high).contains(&status),
            _ => false,
        },
        None => range.trim().parse::<u16>() == Ok(status),
    }
}

impl Channel for HttpChannel {
    fn name(&self) -> &str {
        "http"
    }

    fn attempt<'a>(
        &'a self,
        notification: &'a Notification,
        _context: AttemptContext<'a>,
    ) -> AttemptFuture<'a> {
        Box::pin(self.deliver(notification))
    }
}
