//! Each bot platform's request format, signature and answer codes, as the platforms document
//! them:
//! - Slack incoming webhooks: `{"text": …}`; answers `ok`, or a 4xx with an error word
//!   (`invalid_payload`, `no_service`, `channel_is_archived`, …).
//! - Feishu / Lark custom bots: `{"msg_type": "text", "content": {"text": …}}` plus, when the
//!   bot has a signing secret, `timestamp` (seconds) and `sign` = base64(HMAC-SHA256 with key
//!   `"{timestamp}\n{secret}"` over an empty message); answers `{"code": 0, …}` or an error code.
//! - DingTalk custom robots: `{"msgtype": "text", "text": {"content": …}}`, signed by adding
//!   `timestamp` (milliseconds) and `sign` = base64(HMAC-SHA256 with key `secret` over
//!   `"{timestamp}\n{secret}"`) to the URL's query; answers `{"errcode": 0, …}`.
//! - WeCom group bots: `{"msgtype": "text", "text": {"content": …}}` to the bot's
//!   `webhook/send?key=…` URL; answers `{"errcode": 0, …}`.

use std::time::Duration;

use base64::Engine;
use herald_core::Notification;
use herald_core::retry::AttemptOutcome;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

/// The longest message text sent; platforms refuse longer ones (WeCom: 2,048 bytes, DingTalk
/// and Feishu more), so text is cut at a character boundary with an ellipsis.
pub const MAX_TEXT_BYTES: usize = 2_000;

/// The platforms' own advice for their rate limits (20 messages a minute per bot): wait a
/// minute before trying again.
const RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);

/// A bot platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// Slack incoming webhooks.
    Slack,
    /// Feishu / Lark custom bots.
    Feishu,
    /// DingTalk custom robots.
    DingTalk,
    /// WeCom (WeChat Work) group bots.
    WeCom,
}

/// A request ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotRequest {
    /// Where to POST.
    pub url: String,
    /// The JSON body.
    pub body: Vec<u8>,
}

impl Provider {
    /// The provider of a channel name (`slack`, `feishu`, `dingtalk`, `wecom`).
    pub fn from_channel(channel: &str) -> Option<Self> {
        match channel {
            "slack" => Some(Self::Slack),
            "feishu" => Some(Self::Feishu),
            "dingtalk" => Some(Self::DingTalk),
            "wecom" => Some(Self::WeCom),
            _ => None,
        }
    }

    /// The channel name.
    pub fn channel(self) -> &'static str {
        match self {
            Self::Slack => "slack",
            Self::Feishu => "feishu",
            Self::DingTalk => "dingtalk",
            Self::WeCom => "wecom",
        }
    }

    /// The request that posts `text` to the bot at `address`, signed with `secret` (Feishu
    /// and DingTalk) at `now_ms`.
    pub fn request(
        self,
        address: &str,
        text: &str,
        secret: Option<&str>,
        now_ms: i64,
    ) -> Result<BotRequest, String> {
        let mut url =
            url::Url::parse(address).map_err(|e| format!("{address:?} is not a bot URL: {e}"))?;
        let body = match self {
            Self::Slack => json!({"text": text}),
            Self::WeCom => json!({"msgtype": "text", "text": {"content": text}}),
            Self::DingTalk => {
                if let Some(secret) = secret {
                    url.query_pairs_mut()
                        .append_pair("timestamp", &now_ms.to_string())
                        .append_pair("sign", &dingtalk_sign(now_ms, secret));
                }
                json!({"msgtype": "text", "text": {"content": text}})
            }
            Self::Feishu => {
                let mut body = json!({"msg_type": "text", "content": {"text": text}});
                if let Some(secret) = secret {
                    let seconds = now_ms / 1000;
                    body["timestamp"] = json!(seconds.to_string());
                    body["sign"] = json!(feishu_sign(seconds, secret));
                }
                body
            }
        };
        Ok(BotRequest {
            url: url.into(),
            body: serde_json::to_vec(&body).expect("JSON serialises"),
        })
    }

    /// Refines the HTTP classification with what the platform said in the body: the
    /// platforms answer most errors with HTTP 200 and a code.
    pub fn classify(self, http: AttemptOutcome, body: Option<&str>) -> AttemptOutcome {
        match self {
            Self::Slack => classify_slack(http, body),
            Self::Feishu | Self::DingTalk | Self::WeCom => {
                if http != AttemptOutcome::Delivered {
                    return http;
                }
                let parsed: Option<serde_json::Value> =
                    body.and_then(|b| serde_json::from_str(b).ok());
                let field = if self == Self::Feishu {
                    "code"
                } else {
                    "errcode"
                };
                let Some(reply) = parsed else {
                    return AttemptOutcome::Permanent {
                        reason: format!(
                            "{} answered 2xx without its JSON reply: {:?}",
                            self.channel(),
                            body.unwrap_or("")
                        ),
                    };
                };
                // Feishu's older replies use StatusCode.
                let code = reply
                    .get(field)
                    .or_else(|| reply.get("StatusCode"))
                    .and_then(serde_json::Value::as_i64)
                    .unwrap_or(0);
                let message = reply
                    .get(if self == Self::Feishu {
                        "msg"
                    } else {
                        "errmsg"
                    })
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or("");
                self.classify_code(code, message)
            }
        }
    }

    /// What a Feishu, DingTalk or WeCom answer code means.
    pub fn classify_code(self, code: i64, message: &str) -> AttemptOutcome {
        let reason = format!("{} error {code}: {message}", self.channel());
        let retry = |retry_after| AttemptOutcome::Retryable {
            retry_after,
            reason: reason.clone(),
        };
        match (self, code) {
            (_, 0) => AttemptOutcome::Delivered,
            // Rate limits: 11232 frequency limited; 130101 send too fast; 45009 api freq out
            // of limit.
            (Self::Feishu, 11232) | (Self::DingTalk, 130101) | (Self::WeCom, 45009) => {
                retry(Some(RATE_LIMIT_WAIT))
            }
            // System busy.
            (Self::DingTalk | Self::WeCom, -1) => retry(None),
            // The bot is gone: the token does not exist, the webhook URL is invalid, the bot
            // was removed from its chat.
            (Self::DingTalk, 300001 | 400102) | (Self::WeCom, 93000) | (Self::Feishu, 19001) => {
                AttemptOutcome::Gone { reason }
            }
            // Everything else — a signature or keyword mismatch, an IP not allowed, an invalid
            // message — will fail again: dead-letter.
            _ => AttemptOutcome::Permanent { reason },
        }
    }
}

/// Slack answers with HTTP statuses and an error word in the body.
fn classify_slack(http: AttemptOutcome, body: Option<&str>) -> AttemptOutcome {
    let word = body.unwrap_or("").trim();
    match http {
        AttemptOutcome::Delivered if word == "ok" || word.is_empty() => AttemptOutcome::Delivered,
        AttemptOutcome::Delivered => AttemptOutcome::Permanent {
            reason: format!("slack answered 2xx with {word:?}, not ok"),
        },
        // The webhook was revoked, its app removed, or its channel deleted or archived.
        AttemptOutcome::Permanent { .. }
            if matches!(
                word,
                "no_service" | "channel_not_found" | "channel_is_archived" | "no_active_hooks"
            ) =>
        {
            AttemptOutcome::Gone {
                reason: format!("slack: {word}"),
            }
        }
        AttemptOutcome::Permanent { reason } if !word.is_empty() => AttemptOutcome::Permanent {
            reason: format!("{reason}: slack: {word}"),
        },
        other => other,
    }
}

/// The message text of a notification: its payload when it is already text (a template
/// rendered it), else the event type and id above the payload; cut to [`MAX_TEXT_BYTES`].
pub fn message_text(n: &Notification) -> String {
    let text = crate::channels::notification_text(n);
    if text.len() <= MAX_TEXT_BYTES {
        return text;
    }
    let mut cut = MAX_TEXT_BYTES - '…'.len_utf8();
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &text[..cut])
}

fn hmac_sha256_base64(key: &[u8], message: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Feishu's signature: the key is `"{timestamp}\n{secret}"`, the message empty.
pub fn feishu_sign(timestamp_s: i64, secret: &str) -> String {
    hmac_sha256_base64(format!("{timestamp_s}\n{secret}").as_bytes(), b"")
}

/// DingTalk's signature: the key is the secret, the message `"{timestamp}\n{secret}"`.
pub fn dingtalk_sign(timestamp_ms: i64, secret: &str) -> String {
    hmac_sha256_base64(
        secret.as_bytes(),
        format!("{timestamp_ms}\n{secret}").as_bytes(),
    )
}
