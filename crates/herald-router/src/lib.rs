//! Herald's router: consumes the upstream event topics, finds every subscription an event
//! concerns, and writes one Notification per (event, subscription) to
//! `herald.notify.<channel>`, exactly once, in Kafka transactions that also commit the input
//! offsets. Records it cannot process go to `herald.router.dlq` with the reason in headers.
//!
//! # Layout
//! - [`config`]: the router's settings.
//! - [`subscriptions`]: the live subscription index, loaded from the compacted topic.
//! - [`route`]: decode → match → filter → transform → route, per batch.
//! - [`metrics`]: the router's Prometheus metrics.
//! - [`replay`]: a time window of an event topic routed again, for one subscription or all.
//! - `testkit` (feature `testkit`): a reproducible workload, its oracle, and an in-process
//!   router for tests and benchmarks.
//!
//! The service is [`Router::build`] then [`Router::run_until_stopped`].

pub mod config;
pub mod metrics;
pub mod replay;
pub mod route;
pub mod subscriptions;
#[cfg(feature = "testkit")]
pub mod testkit;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use herald_contract::{Catalog, Decoder, RegistryClient, RegistryConfig};
use herald_core::subscription::KNOWN_CHANNELS;
use herald_core::topics::{ChannelName, TopicNames};
use herald_kafka::{Admin, Pipeline, PipelineConfig, TopicSpec};

pub use config::RouterConfig;
pub use metrics::RouterMetrics;
use route::RouteProcessor;

/// Why the router could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    /// The configuration is invalid.
    #[error("invalid router configuration: {0}")]
    Config(String),
    /// Kafka refused or failed an operation.
    #[error(transparent)]
    Kafka(#[from] herald_kafka::KafkaError),
    /// The schemas could not be loaded.
    #[error("loading schemas: {0}")]
    Schemas(String),
}

/// A router, built and ready to run.
pub struct Router {
    config: RouterConfig,
    names: TopicNames,
    decoder: Arc<Decoder>,
    metrics: Arc<RouterMetrics>,
    registry: prometheus::Registry,
}

impl Router {
    /// Validates the configuration, loads the schemas and creates Herald's topics if needed.
    pub async fn build(config: RouterConfig) -> Result<Self, RouterError> {
        let names = TopicNames::with_prefix(&config.topic_prefix)
            .map_err(|e| RouterError::Config(e.to_string()))?;
        let decoder = Self::decoder(&config)?;
        let registry = prometheus::Registry::new();
        let metrics = Arc::new(
            RouterMetrics::register(&registry).map_err(|e| RouterError::Config(e.to_string()))?,
        );
        let admin = Admin::new(&config.kafka)?;
        admin.ensure_topics(&herald_topics(&names, &config)).await?;
        Ok(Self {
            decoder: Arc::new(decoder),
            names,
            metrics,
            registry,
            config,
        })
    }

    /// The decoder `config` asks for: its schema folder (or the built-in schemas) and its
    /// registry. Tools that decode events without routing them (exports) use it too.
    pub fn decoder(config: &RouterConfig) -> Result<Decoder, RouterError> {
        let catalog = match &config.schemas_dir {
            Some(dir) => {
                Arc::new(Catalog::load_dir(dir).map_err(|e| RouterError::Schemas(e.to_string()))?)
            }
            None => Catalog::builtin(),
        };
        let registry_client = match &config.registry_url {
            Some(url) => Some(
                RegistryClient::new(&RegistryConfig::new(url.clone()))
                    .map_err(|e| RouterError::Config(format!("registry: {e}")))?,
            ),
            None => None,
        };
        Ok(Decoder::new(registry_client, catalog))
    }

    /// The router's metrics, for embedding processes and benchmarks that read them directly.
    pub fn metrics(&self) -> Arc<RouterMetrics> {
        self.metrics.clone()
    }

    /// The Prometheus registry holding the router's metrics.
    pub fn metrics_registry(&self) -> &prometheus::Registry {
        &self.registry
    }

    /// Loads the subscriptions, then routes until `stop` is set; finishes the transaction in
    /// flight before returning. Blocks the calling thread (run it on a blocking thread);
    /// `runtime` drives the schema registry client.
    pub fn run_until_stopped(
        self,
        stop: Arc<AtomicBool>,
        runtime: tokio::runtime::Handle,
    ) -> Result<(), RouterError> {
        let (store, follower) = subscriptions::load_and_follow(
            &self.config.kafka,
            &self.names.subscriptions(),
            self.metrics.clone(),
            stop.clone(),
        )?;
        let mut pipeline_config = PipelineConfig::new(
            &self.names.router_group(),
            &self.config.transactional_id(&self.names),
            self.config.source_topics.clone(),
        );
        // The transactional id is already stable per instance; the same id makes the group
        // membership static, so an instance restarted after a crash takes its partitions back
        // at once instead of waiting out the dead member's session. Only the classic protocol
        // lets a static member replace itself: KIP-848 answers UNRELEASED_INSTANCE_ID until
        // the old member's session times out.
        pipeline_config.group_instance_id = Some(self.config.transactional_id(&self.names));
        pipeline_config.group_protocol = "classic".to_owned();
        pipeline_config.max_batch_records = self.config.max_batch_records;
        pipeline_config.max_batch_wait = Duration::from_millis(self.config.max_batch_wait_ms);
        let mut pipeline = Pipeline::new(&self.config.kafka, pipeline_config)?;
        let mut processor = RouteProcessor::new(
            self.decoder,
            store,
            self.names,
            self.metrics,
            runtime,
            self.config.route_threads,
        );
        tracing::info!(topics = ?self.config.source_topics, "routing");
        let result = pipeline.run(&mut processor, &stop);
        stop.store(true, Ordering::SeqCst);
        let _ = follower.join();
        Ok(result?)
    }
}

/// The topics the router writes to and reads subscriptions from (`herald topics apply` plans
/// with them too).
pub fn herald_topics(names: &TopicNames, config: &RouterConfig) -> Vec<TopicSpec> {
    let mut specs = vec![
        TopicSpec::new(names.subscriptions(), 1).config("cleanup.policy", "compact"),
        TopicSpec::new(names.router_dlq(), config.notify_partitions)
            .config("retention.ms", (30_u64 * 24 * 3600 * 1000).to_string()),
    ];
    for channel in KNOWN_CHANNELS {
        let channel = ChannelName::parse(channel).expect("known channels are valid names");
        specs.push(
            TopicSpec::new(names.notify(&channel), config.notify_partitions)
                .config("retention.ms", (7_u64 * 24 * 3600 * 1000).to_string()),
        );
    }
    specs
}
