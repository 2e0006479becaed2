//! The delivery service's settings: one tree, every field documented, units in the names.

use std::time::Duration;

use herald_core::retry::{DEFAULT_SCHEDULE, RetryPolicy};
use herald_kafka::KafkaConfig;
use serde::Deserialize;

use crate::channels::email::EmailConfig;
use crate::channels::http::HttpTemplate;
use crate::channels::sms::SmsConfig;
use crate::channels::webhook::WebhookConfig;
use crate::channels::wechat::WechatConfig;
use crate::secrets::MasterKey;

/// How a delivery service connects, what it delivers and how it retries.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliverConfig {
    /// The Kafka cluster.
    pub kafka: KafkaConfig,
    /// Prefix of Herald's topics and groups (`herald` → `herald.notify.webhook`).
    pub topic_prefix: String,
    /// The channel this service delivers (`webhook`, …).
    pub channel: String,
    /// Stable id of this replica, part of its `transactional.id`.
    pub instance_id: String,
    /// Delays of the retry tier topics `…retry.1`, `…retry.2`, …, in milliseconds, ascending.
    /// A retry waits in the tier with the longest delay not longer than its own.
    pub retry_tiers_ms: Vec<u64>,
    /// The default retry schedule (delay before each retry), in milliseconds; a subscription
    /// may override it.
    pub retry_schedule_ms: Vec<u64>,
    /// Each retry delay is spread by up to this fraction either way.
    pub retry_jitter: f64,
    /// The longest `Retry-After` honoured, in milliseconds.
    pub max_retry_after_ms: u64,
    /// Records of one partition in flight or waiting to be committed, at most.
    pub max_pending_per_partition: usize,
    /// Attempts in flight at once over all destinations, at most: bounds sockets and memory.
    /// A destination waits for its own permits first, so a slow one holds at most
    /// `endpoint_concurrency` of these.
    pub max_in_flight: usize,
    /// Attempts in flight to one destination at once, at most.
    pub endpoint_concurrency: usize,
    /// Attempts per second to one destination, at most; 0 for no limit.
    pub endpoint_rate_per_sec: u32,
    /// Consecutive failures that open a destination's circuit breaker.
    pub breaker_failures: u32,
    /// How long an open circuit refuses attempts before letting one through, milliseconds.
    pub breaker_open_ms: u64,
    /// A subscription whose deliveries have failed without a success for this many days is
    /// disabled when one of its notifications is dead-lettered.
    pub disable_after_failing_days: u32,
    /// How often finished records are committed, milliseconds.
    pub commit_interval_ms: u64,
    /// How long SIGTERM waits for attempts in flight, milliseconds.
    pub drain_timeout_ms: u64,
    /// Partitions of the topics this service creates when they are missing.
    pub partitions: i32,
    /// The webhook channel's settings.
    pub webhook: WebhookConfig,
    /// The email channel's relay and sender.
    pub email: EmailConfig,
    /// The SMS channel's provider and credentials.
    pub sms: SmsConfig,
    /// The WeChat channel's Official Account.
    pub wechat: WechatConfig,
    /// The generic HTTP channel's request template (required by the `http` channel).
    pub http_template: Option<HttpTemplate>,
    /// The key that decrypts apps' signing secrets in `herald.apps`.
    pub master_key: Option<MasterKey>,
}

impl DeliverConfig {
    /// Defaults for `channel` on a cluster at `brokers`.
    pub fn new(brokers: &str, channel: &str) -> Self {
        let schedule: Vec<u64> = DEFAULT_SCHEDULE
            .iter()
            .map(|d| d.as_millis() as u64)
            .collect();
        Self {
            kafka: KafkaConfig::new(brokers),
            topic_prefix: "herald".to_owned(),
            channel: channel.to_owned(),
            instance_id: "0".to_owned(),
            retry_tiers_ms: schedule.clone(),
            retry_schedule_ms: schedule,
            retry_jitter: 0.2,
            max_retry_after_ms: 6 * 3600 * 1000,
            max_pending_per_partition: 2000,
            max_in_flight: 256,
            endpoint_concurrency: 16,
            endpoint_rate_per_sec: 0,
            breaker_failures: 5,
            breaker_open_ms: 30_000,
            disable_after_failing_days: 5,
            commit_interval_ms: 100,
            drain_timeout_ms: 10_000,
            partitions: 6,
            webhook: WebhookConfig::default(),
            email: EmailConfig::default(),
            sms: SmsConfig::default(),
            wechat: WechatConfig::default(),
            http_template: None,
            master_key: None,
        }
    }

    /// The retry policy the configuration describes.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            schedule: self
                .retry_schedule_ms
                .iter()
                .map(|ms| Duration::from_millis(*ms))
                .collect(),
            jitter: self.retry_jitter,
            max_retry_after: Duration::from_millis(self.max_retry_after_ms),
        }
    }

    /// The retry tiers' delays.
    pub fn tiers(&self) -> Vec<Duration> {
        self.retry_tiers_ms
            .iter()
            .map(|ms| Duration::from_millis(*ms))
            .collect()
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.retry_tiers_ms.is_empty() {
            return Err("retry_tiers_ms: at least one tier is needed".to_owned());
        }
        if self.retry_tiers_ms.windows(2).any(|w| w[0] > w[1]) {
            return Err("retry_tiers_ms: tiers must be in ascending order".to_owned());
        }
        if !(0.0..=1.0).contains(&self.retry_jitter) {
            return Err("retry_jitter: must be between 0 and 1".to_owned());
        }
        for (field, value) in [
            ("max_pending_per_partition", self.max_pending_per_partition),
            ("endpoint_concurrency", self.endpoint_concurrency),
            ("max_in_flight", self.max_in_flight),
        ] {
            if value == 0 {
                return Err(format!("{field}: must be at least 1"));
            }
        }
        Ok(())
    }
}
