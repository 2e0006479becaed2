//! WeChat Official Account template messages: `POST /cgi-bin/message/template/send` with the
//! follower's openid (the subscription's destination address), the template id (its template
//! id) and the template's fields, authorised by an `access_token` that the channel fetches from
//! `/cgi-bin/token` with the account's AppID and AppSecret, caches until shortly before it
//! expires, and fetches again at once when WeChat says it is invalid or expired (40001,
//! 40014, 42001) — then the message is sent again within the same attempt.
//!
//! The template's fields are the event's `data` fields (or the object a subscription template
//! rendered), each as `{"value": "<text>"}`; a destination header `url` sets the page the
//! message opens. WeChat's codes decide the rest: 45009 (rate limit) retries after a minute, -1
//! (busy) retries, 43004 (the user unfollowed), 40003 (invalid openid), 40037 (invalid
//! template) and other errors dead-letter.
//!
//! # Layout
//! - [`config`]: the account's credentials.

pub mod config;
#[cfg(test)]
mod tests;

use std::time::{Duration, Instant};

use herald_core::Notification;
use herald_core::retry::AttemptOutcome;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use serde_json::{Value as Json, json};

pub use config::WechatConfig;

use super::webhook::{WebhookClient, WebhookConfig};
use super::{AttemptContext, AttemptFuture, AttemptReport, Channel};

/// The public API.
pub const ENDPOINT: &str = "https://api.weixin.qq.com";

/// A token is fetched again this long before WeChat says it expires.
const EARLY_REFRESH: Duration = Duration::from_secs(300);

/// A cached access token.
#[derive(Clone)]
struct Token {
    value: String,
    expires_at: Instant,
}

/// The WeChat template message channel.
pub struct WechatChannel {
    config: WechatConfig,
    client: WebhookClient,
    token: tokio::sync::Mutex<Option<Token>>,
}

impl WechatChannel {
    /// Builds the channel, refusing a configuration without credentials; `http` is the
    /// webhook section (HTTP client settings, SSRF allow-list).
    pub fn new(config: &WechatConfig, http: &WebhookConfig) -> Result<Self, String> {
        if config.app_id.is_empty() || config.app_secret.is_empty() {
            return Err("wechat.app_id and wechat.app_secret are required".to_owned());
        }
        Ok(Self {
            config: config.clone(),
            client: WebhookClient::new(http)?,
            token: tokio::sync::Mutex::new(None),
        })
    }

    fn endpoint(&self) -> &str {
        self.config
            .endpoint
            .as_deref()
            .unwrap_or(ENDPOINT)
            .trim_end_matches('/')
    }

    /// A valid token: the cached one, or a new one when there is none, it is about to expire,
    /// or `stale` (the one WeChat just refused) is still the cached one.
    async fn token(&self, stale: Option<&str>) -> Result<String, AttemptReport> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref()
            && Instant::now() < token.expires_at
            && stale != Some(token.value.as_str())
        {
            return Ok(token.value.clone());
        }
        let url = format!(
            "{}/cgi-bin/token?grant_type=client_credential&appid={}&secret={}",
            self.endpoint(),
            percent_encoding::utf8_percent_encode(
                &self.config.app_id,
                percent_encoding::NON_ALPHANUMERIC
            ),
            percent_encoding::utf8_percent_encode(
                &self.config.app_secret,
                percent_encoding::NON_ALPHANUMERIC
            ),
        );
        let report = self.client.get(&url).await;
        if report.outcome != AttemptOutcome::Delivered {
            return Err(report);
        }
        let reply: Option<Json> = report
            .response_body
            .as_deref()
            .and_then(|b| serde_json::from_str(b).ok());
        let value = reply
            .as_ref()
            .and_then(|r| r.get("access_token"))
            .and_then(Json::as_str);
        let Some(value) = value else {
            let code = reply
                .as_ref()
                .and_then(|r| r.get("errcode"))
                .and_then(Json::as_i64);
            let message = reply
                .as_ref()
                .and_then(|r| r.get("errmsg"))
                .and_then(Json::as_str)
                .unwrap_or("");
            let reason = format!("wechat token refused: {} {message}", code.unwrap_or(0));
            // -1: busy; anything else (bad AppID/AppSecret, IP not allowed) needs an operator,
            // who can then redrive.
            let outcome = if code == Some(-1) {
                AttemptOutcome::Retryable {
                    retry_after: None,
                    reason,
                }
            } else {
                AttemptOutcome::Permanent { reason }
            };
            return Err(AttemptReport { outcome, ..report });
        };
        let lifetime = reply
            .as_ref()
            .and_then(|r| r.get("expires_in"))
            .and_then(Json::as_u64)
            .unwrap_or(7200);
        let token = Token {
            value: value.to_owned(),
            expires_at: Instant::now()
                + Duration::from_secs(lifetime).saturating_sub(EARLY_REFRESH),
        };
        tracing::debug!(expires_in_s = lifetime, "wechat access token fetched");
        *cached = Some(token.clone());
        Ok(token.value)
    }

    async fn send(&self, token: &str, body: &[u8]) -> AttemptReport {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let url = format!(
            "{}/cgi-bin/message/template/send?access_token={token}",
            self.endpoint()
        );
        let mut report = self.client.post(&url, headers, body.to_vec()).await;
        report.outcome = classify(report.outcome, report.response_body.as_deref());
        report
    }

    async fn deliver(&self, n: &Notification, context: AttemptContext<'_>) -> AttemptReport {
        let started = Instant::now();
        let spec = context.subscription.map(|s| &s.spec);
        let body = match message(
            n,
            spec.and_then(|s| s.destination.template_id.as_deref()),
            spec.and_then(|s| s.destination.headers.get("url"))
                .map(String::as_str),
        ) {
            Ok(body) => body,
            Err(reason) => {
                return AttemptReport::without_response(
                    AttemptOutcome::Permanent { reason },
                    started.elapsed(),
                );
            }
        };
        let token = match self.token(None).await {
            Ok(token) => token,
            Err(report) => return report,
        };
        let report = self.send(&token, &body).await;
        if !token_refused(report.response_body.as_deref()) {
            return report;
        }
        // The token was revoked or expired early (another client fetched a new one): fetch a
        // new one and send once more.
        match self.token(Some(&token)).await {
            Ok(fresh) => self.send(&fresh, &body).await,
            Err(report) => report,
        }
    }
}

/// Whether WeChat refused the access token (invalid, expired).
fn token_refused(body: Option<&str>) -> bool {
    errcode(body).is_some_and(|(code, _)| matches!(code, 40001 | 40014 | 42001))
}

fn errcode(body: Option<&str>) -> Option<(i64, String)> {
    let reply: Json = serde_json::from_str(body?).ok()?;
    let code = reply.get("errcode")?.as_i64()?;
    let message = reply
        .get("errmsg")
        .and_then(Json::as_str)
        .unwrap_or("")
        .to_owned();
    Some((code, message))
}

/// What a template-send reply means.
pub fn classify(http: AttemptOutcome, body: Option<&str>) -> AttemptOutcome {
    if http != AttemptOutcome::Delivered {
        return http;
    }
    let Some((code, message)) = errcode(body) else {
        return AttemptOutcome::Permanent {
            reason: format!(
                "wechat answered without an errcode: {:?}",
                body.unwrap_or("")
            ),
        };
    };
    let reason = format!("wechat {code}: {message}");
    match code {
        0 => AttemptOutcome::Delivered,
        45009 => AttemptOutcome::Retryable {
            retry_after: Some(Duration::from_secs(60)),
            reason,
        },
        // Busy; a token still refused after a fresh one was fetched.
        -1 | 40001 | 40014 | 42001 => AttemptOutcome::Retryable {
            retry_after: None,
            reason,
        },
        _ => AttemptOutcome::Permanent { reason },
    }
}

/// The template-send body for `n`.
pub fn message(
    n: &Notification,
    template_id: Option<&str>,
    url: Option<&str>,
) -> Result<Vec<u8>, String> {
    let template_id = template_id
        .ok_or("WeChat sends template messages: the subscription has no --template-id")?;
    let data: serde_json::Map<String, Json> = super::template_fields(n, "WeChat")?
        .into_iter()
        .map(|(k, v)| (k, json!({ "value": v })))
        .collect();
    let mut body = json!({
        "touser": n.destination,
        "template_id": template_id,
        "data": data,
    });
    if let Some(url) = url {
        body["url"] = json!(url);
    }
    Ok(serde_json::to_vec(&body).expect("JSON serialises"))
}

impl Channel for WechatChannel {
    fn name(&self) -> &str {
        "wechat"
    }

    fn attempt<'a>(
        &'a self,
        notification: &'a Notification,
        context: AttemptContext<'a>,
    ) -> AttemptFuture<'a> {
        Box::pin(self.deliver(notification, context))
    }
}
