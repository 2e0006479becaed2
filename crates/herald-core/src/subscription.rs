//! Subscriptions: what an app wants to be told, where, and how. [`Subscription`] is the record
//! as stored in `herald.subscriptions`; [`CompiledSubscription`] is the same record validated,
//! with its patterns parsed, its filter and transform compiled, ready for the router.
//!
//! Validation happens here, once, so that the CLI, the admin API and the router reject the
//! same things with the same messages.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::filter::{Filter, FilterError};
use crate::topics::ChannelName;
use crate::transform::{Transform as CompiledTransform, TransformError};

/// The channels Herald delivers through. A subscription on any other channel is refused, so
/// that the router never writes to a topic no delivery service reads.
pub const KNOWN_CHANNELS: &[&str] = &[
    "webhook", "email", "sms", "wechat", "feishu", "dingtalk", "wecom", "slack", "http", "inbox",
];

/// Where a channel delivers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Destination {
    /// Channel-specific address: URL, e-mail address, phone number, openid, bot URL or inbox.
    pub address: String,
    /// The provider's message template id, for channels that need one (WeChat, SMS).
    #[serde(default)]
    pub template_id: Option<String>,
    /// Extra headers sent with each delivery (webhook and http channels).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// How an event becomes the delivered payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TransformSpec {
    /// A minijinja template rendering the payload from `event`; `None` sends the event as JSON.
    #[serde(default)]
    pub template: Option<String>,
    /// Top-level fields of the event's data to keep; `None` keeps them all.
    #[serde(default)]
    pub fields: Option<Vec<String>>,
}

/// The delivery ordering a subscription asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Ordering {
    /// Deliver as fast as possible, in any order.
    #[default]
    None,
    /// Deliver one event at a time per event key (e.g. per order id).
    PerKey,
}

/// A digest subscription's batching window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DigestWindow {
    /// Deliver once this many notifications are pending.
    pub max_events: i32,
    /// Deliver at most this many milliseconds after the first pending notification.
    pub max_wait_ms: i64,
}

/// A subscription as stored in the compacted topic `herald.subscriptions`, field for field the
/// `dev.herald.Subscription` Avro record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Subscription {
    /// Unique id; the record's key.
    pub subscription_id: String,
    /// The app (third-party application) that owns it.
    pub app_id: String,
    /// Event-type patterns: `order.paid`, `order.*` or `*`.
    pub event_types: Vec<String>,
    /// Tenants (resource owners) whose events match; `None` means every tenant.
    #[serde(default)]
    pub tenant_scope: Option<Vec<String>>,
    /// A CEL expression over the event that must hold; `None` matches every event.
    #[serde(default)]
    pub filter: Option<String>,
    /// The channel, one of [`KNOWN_CHANNELS`].
    pub channel: String,
    /// Where to deliver.
    pub destination: Destination,
    /// How to shape the payload.
    #[serde(default)]
    pub transform: Option<TransformSpec>,
    /// Delays before each retry in milliseconds; `None` uses the channel's default schedule.
    #[serde(default)]
    pub retry_schedule_ms: Option<Vec<i64>>,
    /// Ordering guarantee.
    #[serde(default)]
    pub ordering: Ordering,
    /// Batching window for digest subscriptions.
    #[serde(default)]
    pub digest: Option<DigestWindow>,
    /// Whether the subscription matches events at all.
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// Creation time, epoch milliseconds.
    #[serde(deserialize_with = "crate::time::epoch_ms")]
    pub created_at: i64,
    /// Last change, epoch milliseconds.
    #[serde(deserialize_with = "crate::time::epoch_ms")]
    pub updated_at: i64,
    /// Incremented on every change.
    pub version: i64,
}

fn enabled_by_default() -> bool {
    true
}

/// An event-type pattern, parsed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventTypePattern {
    /// One type, e.g. `order.paid`.
    Exact(String),
    /// Every type under a prefix: `order.*` is stored as `order.` and matches `order.paid`
    /// and `order.refund.created`, not `order` itself.
    Prefix(String),
    /// `*`: every type.
    Any,
}

impl EventTypePattern {
    /// Parses `order.paid`, `order.*` or `*`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let valid_segment = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
        };
        if text == "*" {
            return Ok(Self::Any);
        }
        let (stem, wildcard) = match text.strip_suffix(".*") {
            Some(stem) => (stem, true),
            None => (text, false),
        };
        if !stem.split('.').all(valid_segment) {
            return Err(format!(
                "{text:?} is not an event-type pattern: use a type such as order.paid, a \
                 prefix such as order.* or *, with segments of letters, digits, '_' and '-'"
            ));
        }
        Ok(if wildcard {
            Self::Prefix(format!("{stem}."))
        } else {
            Self::Exact(stem.to_owned())
        })
    }

    /// Whether `event_type` matches.
    pub fn matches(&self, event_type: &str) -> bool {
        match self {
            Self::Exact(exact) => exact == event_type,
            Self::Prefix(prefix) => event_type.starts_with(prefix.as_str()),
            Self::Any => true,
        }
    }
}

impl fmt::Display for EventTypePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(exact) => f.write_str(exact),
            Self::Prefix(prefix) => write!(f, "{prefix}*"),
            Self::Any => f.write_str("*"),
        }
    }
}

/// Why a subscription was refused; each variant names the field at fault.
#[derive(Debug, thiserror::Error)]
pub enum SubscriptionError {
    /// A required text field is empty.
    #[error("{field} must not be empty")]
    Empty {
        /// The field.
        field: &'static str,
    },
    /// An event-type pattern does not parse.
    #[error("event_types: {0}")]
    Pattern(String),
    /// The channel is not one Herald delivers through.
    #[error("channel {0:?} is not one of {channels}", channels = KNOWN_CHANNELS.join(", "))]
    UnknownChannel(String),
    /// The destination does not suit the channel.
    #[error("destination.address: {0}")]
    Destination(String),
    /// The filter does not compile.
    #[error("filter: {0}")]
    Filter(#[from] FilterError),
    /// The transform does not compile.
    #[error("transform: {0}")]
    Transform(#[from] TransformError),
    /// Another field is out of range.
    #[error("{field}: {message}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
}

impl SubscriptionError {
    /// The path of the field at fault, for APIs that point at it (`destination.address`).
    pub fn field(&self) -> &'static str {
        match self {
            Self::Empty { field } | Self::Invalid { field, .. } => field,
            Self::Pattern(_) => "event_types",
            Self::UnknownChannel(_) => "channel",
            Self::Destination(_) => "destination.address",
            Self::Filter(_) => "filter",
            Self::Transform(_) => "transform",
        }
    }
}

/// A validated subscription, ready to match and render.
#[derive(Debug)]
pub struct CompiledSubscription {
    /// The record it was compiled from.
    pub spec: Subscription,
    /// The channel, validated.
    pub channel: ChannelName,
    /// The parsed event-type patterns.
    pub patterns: Vec<EventTypePattern>,
    /// The compiled filter, if any.
    pub filter: Option<Filter>,
    /// The compiled transform.
    pub transform: CompiledTransform,
}

impl Subscription {
    /// Validates the record and compiles its filter and transform.
    pub fn compile(self) -> Result<Arc<CompiledSubscription>, SubscriptionError> {
        for (field, value) in [
            ("subscription_id", &self.subscription_id),
            ("app_id", &self.app_id),
        ] {
            if value.trim().is_empty() {
                return Err(SubscriptionError::Empty { field });
            }
        }
        if self.event_types.is_empty() {
            return Err(SubscriptionError::Empty {
                field: "event_types",
            });
        }
        let patterns = self
            .event_types
            .iter()
            .map(|p| EventTypePattern::parse(p))
            .collect::<Result<Vec<_>, _>>()
            .map_err(SubscriptionError::Pattern)?;
        if !KNOWN_CHANNELS.contains(&self.channel.as_str()) {
            return Err(SubscriptionError::UnknownChannel(self.channel.clone()));
        }
        let channel = ChannelName::parse(&self.channel)
            .map_err(|e| SubscriptionError::UnknownChannel(e.to_string()))?;
        check_destination(&self.channel, &self.destination)?;
        if let Some(scope) = &self.tenant_scope
            && (scope.is_empty() || scope.iter().any(|t| t.trim().is_empty()))
        {
            return Err(SubscriptionError::Invalid {
                field: "tenant_scope",
                message: "list tenants, or leave it out to match every tenant".to_owned(),
            });
        }
        if let Some(schedule) = &self.retry_schedule_ms
            && schedule.iter().any(|delay| *delay < 0)
        {
            return Err(SubscriptionError::Invalid {
                field: "retry_schedule_ms",
                message: "delays must not be negative".to_owned(),
            });
        }
        if let Some(digest) = &self.digest
            && (digest.max_events < 1 || digest.max_wait_ms < 1)
        {
            return Err(SubscriptionError::Invalid {
                field: "digest",
                message: "max_events and max_wait_ms must be at least 1".to_owned(),
            });
        }
        let filter = self.filter.as_deref().map(Filter::compile).transpose()?;
        let transform = CompiledTransform::compile(self.transform.as_ref())?;
        Ok(Arc::new(CompiledSubscription {
            spec: self,
            channel,
            patterns,
            filter,
            transform,
        }))
    }
}

/// Checks that the address has the shape the channel needs; the delivery service does the
/// deeper checks (DNS, SSRF) at delivery time.
fn check_destination(channel: &str, destination: &Destination) -> Result<(), SubscriptionError> {
    let address = destination.address.trim();
    let refuse = |message: String| Err(SubscriptionError::Destination(message));
    if address.is_empty() {
        return refuse("must not be empty".to_owned());
    }
    match channel {
        // The generic http channel's template decides what its address means (a URL, a user
        // id, a chat id), so only non-emptiness is checked for it.
        "webhook" | "feishu" | "dingtalk" | "wecom" | "slack" => {
            let is_url = address
                .strip_prefix("https://")
                .or_else(|| address.strip_prefix("http://"))
                .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'));
            if !is_url {
                return refuse(format!(
                    "{address:?} is not an http(s) URL, which the {channel} channel needs"
                ));
            }
        }
        "email" => {
            let valid = address
                .split_once('@')
                .is_some_and(|(user, host)| !user.is_empty() && host.contains('.'));
            if !valid {
                return refuse(format!("{address:?} is not an e-mail address"));
            }
        }
        "sms" => {
            let digits = address.strip_prefix('+').unwrap_or(address);
            if !(6..=15).contains(&digits.len()) || !digits.chars().all(|c| c.is_ascii_digit()) {
                return refuse(format!(
                    "{address:?} is not a phone number (E.164, e.g. +8613800138000)"
                ));
            }
        }
        "wechat" if destination.template_id.is_none() => {
            return Err(SubscriptionError::Invalid {
                field: "destination.template_id",
                message: "the wechat channel sends template messages and needs a template id"
                    .to_owned(),
            });
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A valid webhook subscription to adapt in tests.
    pub(crate) fn webhook(id: &str, app: &str, types: &[&str]) -> Subscription {
        Subscription {
            subscription_id: id.to_owned(),
            app_id: app.to_owned(),
            event_types: types.iter().map(|t| (*t).to_owned()).collect(),
            tenant_scope: None,
            filter: None,
            channel: "webhook".to_owned(),
            destination: Destination {
                address: format!("https://{app}.example.com/hooks"),
                ..Destination::default()
            },
            transform: None,
            retry_schedule_ms: None,
            ordering: Ordering::None,
            digest: None,
            enabled: true,
            created_at: 0,
            updated_at: 0,
            version: 1,
        }
    }

    #[test]
    fn patterns_parse_and_match() {
        let exact = EventTypePattern::parse("order.paid").unwrap();
        let prefix = EventTypePattern::parse("order.*").unwrap();
        let any = EventTypePattern::parse("*").unwrap();
        assert!(exact.matches("order.paid"));
        assert!(!exact.matches("order.paid.late"));
        assert!(prefix.matches("order.paid"));
        assert!(prefix.matches("order.refund.created"));
        assert!(!prefix.matches("order"));
        assert!(!prefix.matches("orders.paid"));
        assert!(any.matches("user.registered"));
        assert_eq!(prefix.to_string(), "order.*");
        for bad in [
            "",
            "order.",
            "order.*.paid",
            "ord er",
            "*.paid",
            "order..paid",
        ] {
            assert!(EventTypePattern::parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn invalid_subscriptions_name_the_field() {
        let mut bad = webhook("s1", "a1", &["order.paid"]);
        bad.filter = Some("data.amount >".to_owned());
        let message = bad.compile().unwrap_err().to_string();
        assert!(message.starts_with("filter:"), "{message}");

        let mut bad = webhook("s1", "a1", &["order.paid"]);
        bad.channel = "pigeon".to_owned();
        assert!(
            bad.compile()
                .unwrap_err()
                .to_string()
                .contains("channel \"pigeon\"")
        );

        let mut bad = webhook("s1", "a1", &["order.paid"]);
        bad.destination.address = "ftp://x".to_owned();
        assert!(
            bad.compile()
                .unwrap_err()
                .to_string()
                .starts_with("destination.address:")
        );

        let mut bad = webhook("s1", "a1", &["order..paid"]);
        bad.event_types.push("x".to_owned());
        assert!(
            bad.compile()
                .unwrap_err()
                .to_string()
                .starts_with("event_types:")
        );

        let mut bad = webhook("s1", "a1", &["order.paid"]);
        bad.channel = "email".to_owned();
        bad.destination.address = "nobody".to_owned();
        assert!(bad.clone().compile().is_err());
        bad.destination.address = "dev@example.com".to_owned();
        assert!(bad.compile().is_ok());
    }

    #[test]
    fn timestamps_read_back_from_rfc3339_or_millis() {
        let mut json = serde_json::to_value(webhook("s1", "a1", &["*"])).unwrap();
        json["created_at"] = serde_json::json!("2026-12-03T10:15:30.123Z");
        json["updated_at"] = serde_json::json!(1_780_000_000_000_i64);
        let back: Subscription = serde_json::from_value(json).unwrap();
        assert_eq!(back.created_at, 1_796_292_930_123);
        assert_eq!(back.updated_at, 1_780_000_000_000);
    }
}
