//! Herald's Kafka layer: how every service connects to the cluster and manages topics.
//!
//! # Layout
//! - [`config`]: the `[kafka]` configuration section and the librdkafka settings it produces.
//! - [`admin`]: idempotent topic creation, cluster metadata and committed-offset look-ups.
//! - [`error`]: the typed errors callers branch on.
//! - [`follow`]: following a compacted topic from its beginning, outside any group.
//! - [`pipeline`]: the transactional read-process-write loop (exactly-once fan-out).
//! - [`producer`]: an idempotent producer of byte records for crates that do not link rdkafka.
//! - [`reader`]: reading a topic from its beginning to its end, outside any consumer group.
//! - [`tracker`]: per-partition tracking of records that complete out of order.
//! - [`transaction`]: the transactional producer both exactly-once loops commit through.
//! - [`window`]: reading a time window of a topic (offsetsForTimes), bounded, for replays.
//! - [`worker`]: the concurrent read-process-write loop of the delivery services.
//! - `testkit` (feature `testkit`): per-test topic prefixes and produce/consume helpers for
//!   tests that run against the real broker.
//!
//! # Architecture invariant
//! This is the only crate that links rdkafka. It knows nothing about channels, subscriptions
//! or Avro: it moves bytes and offsets, and the crates above it give them meaning.

pub mod admin;
pub mod config;
pub mod embedded;
pub mod error;
pub mod follow;
pub mod pipeline;
pub mod producer;
pub mod reader;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod tracker;
pub mod transaction;
pub mod watchdog;
pub mod window;
pub mod worker;

pub use admin::{Admin, ClusterInfo, TopicChange, TopicOutcome, TopicSpec};
pub use config::KafkaConfig;
pub use error::KafkaError;
pub use follow::TopicFollower;
pub use pipeline::{
    BatchOutcome, BatchProcessor, DEFAULT_MAX_BATCH_RECORDS, Pipeline, PipelineConfig,
};
pub use producer::{Landed, RecordProducer};
pub use reader::ReadRecord;
pub use transaction::{CommitStats, OutRecord};
pub use window::{PartitionRange, WindowReader};

/// Re-exported so that crates above this one can name client types without linking rdkafka
/// themselves.
pub use rdkafka;
