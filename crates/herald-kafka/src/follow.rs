//! Following a topic from its beginning without a consumer group: how services load a
//! compacted topic (subscriptions, apps) into memory, know when they have read it up to the
//! end it had at start, and then keep applying changes as they arrive.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::reader::{EndIsNotAnError, ReadRecord};
use crate::{KafkaConfig, KafkaError};

/// Reads every partition of one topic from the beginning, forever.
pub struct TopicFollower {
    consumer: BaseConsumer<EndIsNotAnError>,
    topic: String,
    partitions: usize,
    /// Partitions that reported their end at least once: when all have, the follower has
    /// read everything the topic held when it started.
    reached_end: HashSet<i32>,
}

impl TopicFollower {
    /// Assigns every partition of `topic` from its beginning. The topic must exist.
    pub fn open(config: &KafkaConfig, topic: &str) -> Result<Self, KafkaError> {
        let consumer: BaseConsumer<EndIsNotAnError> = config
            .client_config()
            .set("group.id", format!("{topic}-follower"))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .set("isolation.level", "read_committed")
            .create_with_context(EndIsNotAnError)?;
        let partitions = crate::reader::topic_partitions(&consumer, topic, "follow")?;
        let mut assignment = TopicPartitionList::new();
        for partition in &partitions {
            assignment.add_partition_offset(topic, *partition, Offset::Beginning)?;
        }
        consumer.assign(&assignment)?;
        Ok(Self {
            consumer,
            topic: topic.to_owned(),
            partitions: partitions.len(),
            reached_end: HashSet::new(),
        })
    }

    /// The topic followed.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Whether every partition has been read to the end it had when the follower started.
    pub fn caught_up(&self) -> bool {
        self.reached_end.len() == self.partitions
    }

    /// Returns the records that arrive within `timeout` (up to `max`), possibly none.
    pub fn poll(&mut self, max: usize, timeout: Duration) -> Result<Vec<ReadRecord>, KafkaError> {
        let deadline = Instant::now() + timeout;
        let mut records = Vec::new();
        while records.len() < max {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.consumer.poll(left) {
                None => break,
                Some(Err(rdkafka::error::KafkaError::PartitionEOF(partition))) => {
                    self.reached_end.insert(partition);
                    // Return what arrived so far at once: the caller may be waiting for the
                    // catch-up to finish.
                    if !records.is_empty() || self.caught_up() {
                        break;
                    }
                }
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(message)) => records.push(ReadRecord::from_message(&message)),
            }
            if left.is_zero() {
                break;
            }
        }
        Ok(records)
    }
}

/// Applies every record of `topic` up to its current end with `apply`, then keeps applying
/// new ones on a thread of its own until `stop` is set: how a service loads a compacted topic
/// before it starts and follows its changes while it runs.
pub fn load_then_follow(
    config: &KafkaConfig,
    topic: &str,
    stop: Arc<AtomicBool>,
    mut apply: impl FnMut(&ReadRecord) + Send + 'static,
) -> Result<std::thread::JoinHandle<()>, KafkaError> {
    let mut follower = TopicFollower::open(config, topic)?;
    while !follower.caught_up() {
        for record in follower.poll(10_000, Duration::from_millis(200))? {
            apply(&record);
        }
    }
    let name = format!("follow {topic}");
    let handle = std::thread::Builder::new()
        .name(name.chars().take(15).collect())
        .spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match follower.poll(10_000, Duration::from_millis(100)) {
                    Ok(records) => records.iter().for_each(&mut apply),
                    Err(error) => {
                        tracing::warn!(%error, topic = follower.topic(), "following failed; retrying");
                        std::thread::sleep(Duration::from_secs(1));
                    }
                }
            }
        })
        .expect("spawning a follower thread");
    Ok(handle)
}
