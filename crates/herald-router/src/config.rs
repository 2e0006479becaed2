//! The router's settings.

use std::path::PathBuf;

use herald_core::topics::TopicNames;
use herald_kafka::KafkaConfig;
use serde::Deserialize;

/// How the router connects, what it reads and how it batches.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterConfig {
    /// The Kafka cluster.
    pub kafka: KafkaConfig,
    /// Prefix of Herald's topics and groups (`herald` → `herald.notify.webhook`).
    pub topic_prefix: String,
    /// Event topics to consume; a name starting with `^` is a regular expression.
    pub source_topics: Vec<String>,
    /// Base URL of the schema registry's Confluent-compatible API; without one, only
    /// single-object and JSON events decode.
    pub registry_url: Option<String>,
    /// A folder of reader schemas (`*.avsc`); the schemas built into the binary otherwise.
    pub schemas_dir: Option<PathBuf>,
    /// Stable id of this router instance, part of its `transactional.id`: a restarted instance
    /// with the same id fences its predecessor and aborts its open transaction at once.
    pub instance_id: String,
    /// The most events one transaction covers.
    pub max_batch_records: usize,
    /// How long a batch keeps filling after its first event, in milliseconds.
    pub max_batch_wait_ms: u64,
    /// Partitions of the notify and DLQ topics the router creates when they are missing.
    pub notify_partitions: i32,
    /// Threads that route each batch's decoded events (matching, filters, transforms,
    /// encoding); the default is the machine's parallelism.
    pub route_threads: usize,
}

impl RouterConfig {
    /// Defaults for a cluster at `brokers`: prefix `herald`, topics `^events\..*`.
    pub fn new(brokers: &str) -> Self {
        Self {
            kafka: KafkaConfig::new(brokers),
            topic_prefix: "herald".to_owned(),
            source_topics: vec![r"^events\..*".to_owned()],
            registry_url: None,
            schemas_dir: None,
            instance_id: "0".to_owned(),
            max_batch_records: herald_kafka::DEFAULT_MAX_BATCH_RECORDS,
            max_batch_wait_ms: 20,
            notify_partitions: 6,
            route_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }

    /// The producer's `transactional.id`: `<group>-<instance id>`.
    pub fn transactional_id(&self, names: &TopicNames) -> String {
        format!("{}-{}", names.router_group(), self.instance_id)
    }
}
