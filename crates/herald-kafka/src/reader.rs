//! Reading a topic from its beginning to its current end without joining a consumer group:
//! for tools (`herald read`) and tests that inspect what a service wrote.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::message::{Headers, Message};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use crate::{KafkaConfig, KafkaError};

/// Whether reads see only committed transactional records or everything written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// `isolation.level=read_committed`: what Herald's consumers use.
    ReadCommitted,
    /// `isolation.level=read_uncommitted`: shows aborted and open transactions too.
    ReadUncommitted,
}

impl Isolation {
    /// The librdkafka value of `isolation.level`.
    pub fn as_config(self) -> &'static str {
        match self {
            Isolation::ReadCommitted => "read_committed",
            Isolation::ReadUncommitted => "read_uncommitted",
        }
    }
}

/// A record read back, detached from the consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRecord {
    /// The topic it was read from.
    pub topic: String,
    /// The partition it was read from.
    pub partition: i32,
    /// Its offset in that partition.
    pub offset: i64,
    /// Its timestamp in epoch milliseconds, if it has one.
    pub timestamp_ms: Option<i64>,
    /// Its key, if any.
    pub key: Option<Vec<u8>>,
    /// Its value, if any (a tombstone has none).
    pub value: Option<Vec<u8>>,
    /// Its headers in order.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl ReadRecord {
    /// The value as UTF-8 text, for assertions on text payloads; empty when there is none.
    pub fn value_str(&self) -> &str {
        self.value
            .as_deref()
            .and_then(|v| std::str::from_utf8(v).ok())
            .unwrap_or("")
    }
}

impl ReadRecord {
    /// Copies a consumed message out of the consumer's buffers.
    pub(crate) fn from_message<M: Message>(message: &M) -> Self {
        Self {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            timestamp_ms: message.timestamp().to_millis(),
            key: message.key().map(<[u8]>::to_vec),
            value: message.payload().map(<[u8]>::to_vec),
            headers: message
                .headers()
                .map(|headers| {
                    headers
                        .iter()
                        .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// The value of the first header called `name`.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .and_then(|(_, value)| value.as_deref())
    }
}

/// A client context that keeps the end-of-partition events this reader asks for out of the
/// error log (librdkafka reports them as errors too) and logs every other error.
pub(crate) struct EndIsNotAnError;

impl ClientContext for EndIsNotAnError {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        let end_of_partition = matches!(
            error,
            rdkafka::error::KafkaError::PartitionEOF(_)
                | rdkafka::error::KafkaError::Global(RDKafkaErrorCode::PartitionEOF)
        );
        if !end_of_partition {
            tracing::error!(error = %error, reason, "kafka reader error");
        }
    }
}

impl ConsumerContext for EndIsNotAnError {}

/// How much to read.
#[derive(Debug, Clone, Copy)]
pub struct ReadOptions {
    /// Isolation level.
    pub isolation: Isolation,
    /// Keep reading (until the timeout) until at least this many records have arrived.
    pub min_records: usize,
    /// Stop after this many records.
    pub max_records: usize,
    /// Give up waiting after this long and return what was read.
    pub timeout: Duration,
}

/// Reads `topic` from the beginning of every partition until at least `min_records` records
/// have arrived and every partition has reached its end (for `read_committed`, the last stable
/// offset), or `max_records` were read, or the timeout passed. Records are in arrival order.
pub fn read_from_beginning(
    config: &KafkaConfig,
    group: &str,
    topic: &str,
    options: ReadOptions,
) -> Result<Vec<ReadRecord>, KafkaError> {
    let consumer: BaseConsumer<EndIsNotAnError> = config
        .client_config()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", options.isolation.as_config())
        .create_with_context(EndIsNotAnError)?;
    let partitions = topic_partitions(&consumer, topic, "read")?;
    let mut assignment = TopicPartitionList::new();
    for partition in &partitions {
        assignment.add_partition_offset(topic, *partition, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;

    let mut records = Vec::new();
    let mut at_end = HashSet::new();
    let started = Instant::now();
    while started.elapsed() < options.timeout && records.len() < options.max_records {
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(partition))) => {
                at_end.insert(partition);
                if records.len() >= options.min_records && at_end.len() == partitions.len() {
                    break;
                }
            }
            Some(Err(e)) => return Err(e.into()),
            Some(Ok(message)) => {
                at_end.remove(&message.partition());
                records.push(ReadRecord::from_message(&message));
            }
        }
    }
    Ok(records)
}

/// The partitions of `topic`, or an error naming the operation when it does not exist.
pub(crate) fn topic_partitions<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    operation: &'static str,
) -> Result<Vec<i32>, KafkaError> {
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(KafkaError::Topic {
            operation,
            topic: topic.to_owned(),
            code: RDKafkaErrorCode::UnknownTopicOrPartition,
        });
    }
    Ok(partitions)
}
