//! Herald's delivery service: one consumer group per channel (`herald-deliver-<channel>`)
//! reads `herald.notify.<channel>` and its retry tiers, makes one attempt per record through
//! the channel, and writes each outcome — the attempt record, a retry-tier record or a dead
//! letter — in the Kafka transaction that commits the record's offset.
//!
//! # Layout
//! - [`config`]: the service's settings.
//! - [`channels`]: one folder per channel; a channel makes one attempt and classifies it.
//! - [`dispatch`]: the worker's dispatcher: lanes, attempts, outcome records.
//! - [`endpoint`]: per-destination concurrency, rate limit and circuit breaker.
//! - [`ssrf`]: the guard that keeps deliveries off private networks.
//! - [`redrive`]: listing and redriving dead letters.
//! - [`inbox`]: the pull inbox (`herald inbox`): long-poll, acknowledgements, SSE, app API keys.
//! - [`secrets`]: signing secrets encrypted at rest.
//! - [`state`]: live subscriptions and apps' signing secrets.
//! - [`metrics`]: the service's Prometheus metrics.
//!
//! The service is [`Deliverer::build`] then [`Deliverer::run_until_stopped`]; the Kafka side
//! (offset tracking, pausing, transactions) is `herald_kafka::worker`.

pub mod channels;
pub mod config;
pub mod dispatch;
pub mod endpoint;
pub mod http_metrics;
pub mod inbox;
pub mod metrics;
pub mod redrive;
pub mod secrets;
pub mod ssrf;
pub mod state;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald_contract::RecordCodec;
use herald_core::topics::{ChannelName, TopicNames};
use herald_kafka::worker::{Worker, WorkerConfig};
use herald_kafka::{Admin, TopicSpec, follow};

use channels::Channel;
use channels::webhook::WebhookChannel;
pub use config::DeliverConfig;
use dispatch::{DUE_AT, DeliverDispatcher, Shared};
use endpoint::{EndpointLimits, Endpoints};
pub use metrics::DeliverMetrics;
use state::DeliveryState;

/// Why the service could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    /// The configuration is invalid.
    #[error("invalid delivery configuration: {0}")]
    Config(String),
    /// Kafka refused or failed an operation.
    #[error(transparent)]
    Kafka(#[from] herald_kafka::KafkaError),
}

const DAY_MS: u64 = 24 * 3600 * 1000;

/// A delivery service, built and ready to run.
pub struct Deliverer {
    config: DeliverConfig,
    names: TopicNames,
    channel_name: ChannelName,
    channel: Arc<dyn Channel>,
    metrics: Arc<DeliverMetrics>,
    registry: prometheus::Registry,
}

impl Deliverer {
    /// Validates the configuration, builds the channel and creates the topics it needs.
    pub async fn build(config: DeliverConfig) -> Result<Self, DeliverError> {
        config.validate().map_err(DeliverError::Config)?;
        let names = TopicNames::with_prefix(&config.topic_prefix)
            .map_err(|e| DeliverError::Config(e.to_string()))?;
        let channel_name =
            ChannelName::parse(&config.channel).map_err(|e| DeliverError::Config(e.to_string()))?;
        let channel: Arc<dyn Channel> = match channel_name.as_str() {
            "http" => {
                let template = config.http_template.as_ref().ok_or_else(|| {
                    DeliverError::Config(
                        "the http channel needs a request template (--http-template FILE)"
                            .to_owned(),
                    )
                })?;
                Arc::new(
                    channels::http::HttpChannel::new(template, &config.webhook)
                        .map_err(DeliverError::Config)?,
                )
            }
            "webhook" => {
                Arc::new(WebhookChannel::new(&config.webhook).map_err(DeliverError::Config)?)
            }
            "email" => Arc::new(
                channels::email::EmailChannel::new(&config.email).map_err(DeliverError::Config)?,
            ),
            "wechat" => Arc::new(
                channels::wechat::WechatChannel::new(&config.wechat, &config.webhook)
                    .map_err(DeliverError::Config)?,
            ),
            "sms" => Arc::new(
                channels::sms::SmsChannel::new(&config.sms, &config.webhook)
                    .map_err(DeliverError::Config)?,
            ),
            other => match channels::bot::Provider::from_channel(other) {
                Some(provider) => Arc::new(
                    channels::bot::BotChannel::new(provider, &config.webhook)
                        .map_err(DeliverError::Config)?,
                ),
                None => {
                    return Err(DeliverError::Config(format!(
                        "the {other} channel is not implemented yet; this build delivers \
                         webhook, http, email, sms, wechat, slack, feishu, dingtalk and wecom"
                    )));
                }
            },
        };
        let registry = prometheus::Registry::new();
        let metrics = Arc::new(
            DeliverMetrics::register(&registry).map_err(|e| DeliverError::Config(e.to_string()))?,
        );
        ensure_topics(&config).await?;
        Ok(Self {
            config,
            names,
            channel_name,
            channel,
            metrics,
            registry,
        })
    }

    /// The service's metrics.
    pub fn metrics(&self) -> Arc<DeliverMetrics> {
        self.metrics.clone()
    }

    /// The Prometheus registry holding them.
    pub fn metrics_registry(&self) -> &prometheus::Registry {
        &self.registry
    }

    /// Loads subscriptions and apps, then delivers until `stop` is set; drains and commits
    /// before returning. Blocks the calling thread; attempts run on `runtime`.
    pub fn run_until_stopped(
        self,
        stop: Arc<AtomicBool>,
        runtime: tokio::runtime::Handle,
    ) -> Result<(), DeliverError> {
        // Channels may hold runtime resources whose drop spawns a task (lettre's SMTP pool
        // closes its connections that way), so everything is dropped inside the runtime.
        let _runtime = runtime.enter();
        let state = Arc::new(DeliveryState::default());
        let subscriptions_codec = RecordCodec::subscription();
        let followers = [
            {
                let state = state.clone();
                let codec = subscriptions_codec.clone();
                follow::load_then_follow(
                    &self.config.kafka,
                    &self.names.subscriptions(),
                    stop.clone(),
                    move |record| state.apply_subscription(&codec, record),
                )?
            },
            {
                let state = state.clone();
                let codec = RecordCodec::builtin("dev.herald.App");
                let key = self.config.master_key.clone();
                follow::load_then_follow(
                    &self.config.kafka,
                    &self.names.apps(),
                    stop.clone(),
                    move |record| state.apply_app(&codec, key.as_ref(), record),
                )?
            },
        ];
        let limits = EndpointLimits {
            concurrency: self.config.endpoint_concurrency,
            rate_per_sec: NonZeroU32::new(self.config.endpoint_rate_per_sec),
            breaker_failures: self.config.breaker_failures.max(1),
            breaker_open: Duration::from_millis(self.config.breaker_open_ms),
        };
        let shared = Arc::new(Shared {
            channel: self.channel,
            channel_name: self.channel_name.clone(),
            state,
            endpoints: Endpoints::new(limits),
            in_flight: Arc::new(tokio::sync::Semaphore::new(self.config.max_in_flight)),
            policy: self.config.retry_policy(),
            tiers: self.config.tiers(),
            names: self.names.clone(),
            notifications: RecordCodec::notification(),
            attempts: RecordCodec::builtin("dev.herald.DeliveryAttempt"),
            subscriptions: subscriptions_codec,
            metrics: self.metrics.clone(),
            disable_after: Duration::from_millis(
                u64::from(self.config.disable_after_failing_days) * DAY_MS,
            ),
            failing_since: Mutex::new(HashMap::new()),
        });
        let group = self.names.deliver_group(&self.channel_name);
        let transactional_id = format!("{group}-{}", self.config.instance_id);
        let mut worker_config = WorkerConfig::new(
            &group,
            &transactional_id,
            source_topics(&self.names, &self.channel_name, &self.config),
        );
        // Static membership on the classic protocol, as the router: a replica restarted after
        // a crash takes its partitions back at once instead of waiting out its old session.
        worker_config.group_protocol = "classic".to_owned();
        worker_config.group_instance_id = Some(transactional_id);
        worker_config.due_header = Some(DUE_AT.to_owned());
        worker_config.max_pending_per_partition = self.config.max_pending_per_partition;
        worker_config.commit_interval = Duration::from_millis(self.config.commit_interval_ms);
        worker_config.drain_timeout = Duration::from_millis(self.config.drain_timeout_ms);
        let mut worker = Worker::new(&self.config.kafka, worker_config)?;
        let mut dispatcher = DeliverDispatcher::new(shared, runtime);
        tracing::info!(channel = %self.channel_name, "delivering");
        let result = worker.run(&mut dispatcher, &stop);
        stop.store(true, Ordering::SeqCst);
        for follower in followers {
            let _ = follower.join();
        }
        Ok(result?)
    }
}

/// Creates every topic the service configured by `config` reads or writes, if missing.
pub async fn ensure_topics(config: &DeliverConfig) -> Result<(), DeliverError> {
    let names = TopicNames::with_prefix(&config.topic_prefix)
        .map_err(|e| DeliverError::Config(e.to_string()))?;
    let channel =
        ChannelName::parse(&config.channel).map_err(|e| DeliverError::Config(e.to_string()))?;
    Admin::new(&config.kafka)?
        .ensure_topics(&topics(&names, &channel, config))
        .await?;
    Ok(())
}

/// The topics the service reads: the channel's topic and its retry tiers.
fn source_topics(names: &TopicNames, channel: &ChannelName, config: &DeliverConfig) -> Vec<String> {
    let mut topics = vec![names.notify(channel)];
    for tier in 1..=config.retry_tiers_ms.len() {
        topics.push(names.notify_retry(channel, tier as u16));
    }
    topics
}

/// Every topic the service reads or writes, with the design's retention.
pub fn topics(names: &TopicNames, channel: &ChannelName, config: &DeliverConfig) -> Vec<TopicSpec> {
    let retention = |days: u64| (days * DAY_MS).to_string();
    let mut specs = vec![
        TopicSpec::new(names.subscriptions(), 1).config("cleanup.policy", "compact"),
        TopicSpec::new(names.apps(), 1).config("cleanup.policy", "compact"),
        TopicSpec::new(names.notify(channel), config.partitions)
            .config("retention.ms", retention(7)),
        TopicSpec::new(names.notify_dlq(channel), config.partitions)
            .config("retention.ms", retention(30)),
        TopicSpec::new(names.attempts(), config.partitions).config("retention.ms", retention(30)),
    ];
    for tier in 1..=config.retry_tiers_ms.len() {
        specs.push(
            TopicSpec::new(names.notify_retry(channel, tier as u16), config.partitions)
                .config("retention.ms", retention(1)),
        );
    }
    specs
}
