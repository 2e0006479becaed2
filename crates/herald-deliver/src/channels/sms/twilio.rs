//! Twilio Programmable Messaging: `POST /2010-04-01/Accounts/{AccountSid}/Messages.json` with
//! a form (`To`, `From` or `MessagingServiceSid`, `Body`) and HTTP basic authentication
//! (account SID and auth token). Replies: 201 with the message, or an error status with
//! `{"code": …, "message": …}`.

use std::time::Duration;

use base64::Engine;
use herald_core::Notification;
use herald_core::retry::AttemptOutcome;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use serde_json::Value as Json;

use super::{ProviderRequest, SmsConfig};

/// The public endpoint.
pub const ENDPOINT: &str = "https://api.twilio.com";

/// The `Messages` request for `n`.
pub fn request(config: &SmsConfig, n: &Notification) -> Result<ProviderRequest, String> {
    let sid = config.account_sid.as_deref().unwrap_or_default();
    let token = config.auth_token.as_deref().unwrap_or_default();
    let from = config.from.as_deref().unwrap_or_default();
    let from_field = if from.starts_with("MG") {
        "MessagingServiceSid"
    } else {
        "From"
    };
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("To", &n.destination)
        .append_pair(from_field, from)
        .append_pair("Body", &crate::channels::notification_text(n))
        .finish();
    let mut headers = HeaderMap::new();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    let credentials = base64::engine::general_purpose::STANDARD.encode(format!("{sid}:{token}"));
    headers.insert(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Basic {credentials}"))
            .map_err(|_| "the Twilio credentials are not valid header text".to_owned())?,
    );
    Ok(ProviderRequest {
        url: format!(
            "{}/2010-04-01/Accounts/{sid}/Messages.json",
            config
                .endpoint
                .as_deref()
                .unwrap_or(ENDPOINT)
                .trim_end_matches('/')
        ),
        headers,
        body: body.into_bytes(),
    })
}

/// What Twilio's reply means: the HTTP status first, refined by Twilio's error code.
pub fn classify(http: AttemptOutcome, body: Option<&str>) -> AttemptOutcome {
    if http == AttemptOutcome::Delivered {
        return http;
    }
    let reply: Option<Json> = body.and_then(|b| serde_json::from_str(b).ok());
    let Some(code) = reply
        .as_ref()
        .and_then(|r| r.get("code"))
        .and_then(Json::as_i64)
    else {
        return http;
    };
    let message = reply
        .as_ref()
        .and_then(|r| r.get("message"))
        .and_then(Json::as_str)
        .unwrap_or("");
    classify_code(code, message).unwrap_or(http)
}

/// What a Twilio error code means, when it decides more than the HTTP status does.
pub fn classify_code(code: i64, message: &str) -> Option<AttemptOutcome> {
    let reason = format!("twilio {code}: {message}");
    match code {
        // Too many requests; the message queue is full.
        20429 | 30001 => Some(AttemptOutcome::Retryable {
            retry_after: Some(Duration::from_secs(60)),
            reason,
        }),
        // Not a valid number, not a mobile number, the recipient replied STOP, the region is
        // not enabled, the number cannot receive messages: will fail again.
        21211 | 21214 | 21408 | 21610 | 21612 | 21614 => Some(AttemptOutcome::Permanent { reason }),
        _ => None,
    }
}
