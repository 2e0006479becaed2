//! The names of Herald's Kafka topics.
//!
//! Every topic Herald owns hangs off one prefix (`herald` by default) so that several Herald
//! installations, or several tests, can share one cluster without seeing each other's data.
//! Upstream event topics (`events.<domain>`) are not Herald's and are not prefixed.

use std::fmt;

/// Why a topic prefix or channel name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicNameError {
    /// The name is empty.
    #[error("{what} must not be empty")]
    Empty {
        /// Which part of the name was empty (`prefix` or `channel`).
        what: &'static str,
    },
    /// The name holds a character Kafka does not allow in topic names.
    #[error(
        "{what} {value:?} holds {found:?}; Kafka topic names allow only ASCII letters, digits, '.', '_' and '-'"
    )]
    InvalidCharacter {
        /// Which part of the name was wrong (`prefix` or `channel`).
        what: &'static str,
        /// The name as given.
        value: String,
        /// The first character that is not allowed.
        found: char,
    },
    /// The longest topic derived from the name would exceed Kafka's 249-character limit.
    #[error("{what} {value:?} is too long: derived topic names would exceed 249 characters")]
    TooLong {
        /// Which part of the name was too long (`prefix` or `channel`).
        what: &'static str,
        /// The name as given.
        value: String,
    },
}

/// Kafka refuses topic names longer than this.
const MAX_TOPIC_LEN: usize = 249;
/// Room kept for the longest suffix Herald appends (`.notify.<channel>.retry.<n>`), so that a
/// prefix accepted here never produces an invalid topic later.
const SUFFIX_RESERVE: usize = 64;

fn check_name(what: &'static str, value: &str) -> Result<(), TopicNameError> {
    if value.is_empty() {
        return Err(TopicNameError::Empty { what });
    }
    if let Some(found) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(TopicNameError::InvalidCharacter {
            what,
            value: value.to_owned(),
            found,
        });
    }
    if value.len() > MAX_TOPIC_LEN - SUFFIX_RESERVE {
        return Err(TopicNameError::TooLong {
            what,
            value: value.to_owned(),
        });
    }
    Ok(())
}

/// A validated channel name such as `webhook`, `email` or `feishu`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelName(String);

impl ChannelName {
    /// Parses a channel name; it becomes part of topic and consumer-group names.
    pub fn parse(value: &str) -> Result<Self, TopicNameError> {
        check_name("channel", value)?;
        Ok(Self(value.to_owned()))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The names of every topic and consumer group Herald owns, derived from one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicNames {
    prefix: String,
}

impl Default for TopicNames {
    fn default() -> Self {
        Self {
            prefix: "herald".to_owned(),
        }
    }
}

impl TopicNames {
    /// Names under a custom prefix, e.g. `acme-herald` or a per-test prefix.
    pub fn with_prefix(prefix: &str) -> Result<Self, TopicNameError> {
        check_name("prefix", prefix)?;
        Ok(Self {
            prefix: prefix.to_owned(),
        })
    }

    /// The prefix every name starts with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The compacted topic of apps (tenants).
    pub fn apps(&self) -> String {
        format!("{}.apps", self.prefix)
    }

    /// The compacted topic of subscriptions.
    pub fn subscriptions(&self) -> String {
        format!("{}.subscriptions", self.prefix)
    }

    /// The topic of delivery attempts.
    pub fn attempts(&self) -> String {
        format!("{}.attempts", self.prefix)
    }

    /// The audit trail: one record per change made through the admin API.
    pub fn audit(&self) -> String {
        format!("{}.audit", self.prefix)
    }

    /// The router's dead-letter topic for records it cannot process.
    pub fn router_dlq(&self) -> String {
        format!("{}.router.dlq", self.prefix)
    }

    /// The topic of notifications waiting for delivery on `channel`.
    pub fn notify(&self, channel: &ChannelName) -> String {
        format!("{}.notify.{channel}", self.prefix)
    }

    /// The retry topic of `channel` for retry tier `tier` (1-based).
    pub fn notify_retry(&self, channel: &ChannelName, tier: u16) -> String {
        format!("{}.notify.{channel}.retry.{tier}", self.prefix)
    }

    /// The dead-letter topic of `channel`.
    pub fn notify_dlq(&self, channel: &ChannelName) -> String {
        format!("{}.notify.{channel}.dlq", self.prefix)
    }

    /// The consumer group of the router.
    pub fn router_group(&self) -> String {
        format!("{}-router", self.prefix)
    }

    /// The consumer group of the delivery service of `channel`.
    pub fn deliver_group(&self, channel: &ChannelName) -> String {
        format!("{}-deliver-{channel}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_match_the_design() {
        let names = TopicNames::default();
        let webhook = ChannelName::parse("webhook").expect("valid channel");
        assert_eq!(names.apps(), "herald.apps");
        assert_eq!(names.subscriptions(), "herald.subscriptions");
        assert_eq!(names.attempts(), "herald.attempts");
        assert_eq!(names.router_dlq(), "herald.router.dlq");
        assert_eq!(names.notify(&webhook), "herald.notify.webhook");
        assert_eq!(
            names.notify_retry(&webhook, 3),
            "herald.notify.webhook.retry.3"
        );
        assert_eq!(names.notify_dlq(&webhook), "herald.notify.webhook.dlq");
        assert_eq!(names.router_group(), "herald-router");
        assert_eq!(names.deliver_group(&webhook), "herald-deliver-webhook");
    }

    #[test]
    fn prefixes_that_kafka_would_refuse_are_rejected() {
        assert_eq!(
            TopicNames::with_prefix(""),
            Err(TopicNameError::Empty { what: "prefix" })
        );
        assert!(matches!(
            TopicNames::with_prefix("a/b"),
            Err(TopicNameError::InvalidCharacter { found: '/', .. })
        ));
        assert!(matches!(
            TopicNames::with_prefix(&"x".repeat(200)),
            Err(TopicNameError::TooLong { .. })
        ));
        assert!(matches!(
            ChannelName::parse("we chat"),
            Err(TopicNameError::InvalidCharacter { found: ' ', .. })
        ));
    }

    #[test]
    fn a_custom_prefix_renames_every_topic() {
        let names = TopicNames::with_prefix("t-42").expect("valid prefix");
        assert_eq!(names.subscriptions(), "t-42.subscriptions");
        assert_eq!(names.router_group(), "t-42-router");
    }
}
