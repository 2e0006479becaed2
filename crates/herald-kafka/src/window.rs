//! Reading a time window of a topic: every record from the first offset at or after `from`
//! up to, not including, the first offset at or after `to`, in every partition (offsets found
//! with `offsetsForTimes`). Bounded: it stops at the window's end and never tails. Used by
//! `herald replay` (re-routing and exports) and the admin API's replays.
//!
//! Offsets bound the window, so with producer timestamps out of order a record inside the
//! offset range whose own timestamp lies outside `[from, to)` is left out too: both
//! boundaries hold for every record returned.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::reader::{EndIsNotAnError, Isolation, ReadRecord};
use crate::{KafkaConfig, KafkaError};

/// How long a metadata or offsets request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// One partition's share of the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionRange {
    /// The partition.
    pub partition: i32,
    /// The first offset of the window.
    pub start: i64,
    /// The first offset after the window.
    pub end: i64,
    /// The next offset to read (`start` until something was read).
    pub next: i64,
}

impl PartitionRange {
    fn done(&self) -> bool {
        self.next >= self.end
    }
}

/// A reader of one topic's window.
pub struct WindowReader {
    consumer: BaseConsumer<EndIsNotAnError>,
    topic: String,
    from_ms: i64,
    to_ms: i64,
    ranges: BTreeMap<i32, PartitionRange>,
    /// Records in the window's offset ranges and outside its time range, left out.
    pub skipped_out_of_time: u64,
}

impl WindowReader {
    /// Finds the window's offsets in every partition of `topic` and positions a consumer
    /// (no consumer group, nothing committed) at their starts.
    pub fn open(
        kafka: &KafkaConfig,
        topic: &str,
        from_ms: i64,
        to_ms: i64,
        isolation: Isolation,
    ) -> Result<Self, KafkaError> {
        if to_ms <= from_ms {
            return Err(KafkaError::Invalid(format!(
                "the window's end ({to_ms} ms) must come after its start ({from_ms} ms)"
            )));
        }
        let consumer: BaseConsumer<EndIsNotAnError> = kafka
            .client_config()
            .set("group.id", "herald-window-reader")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "true")
            .set("isolation.level", isolation.as_config())
            .create_with_context(EndIsNotAnError)?;
        let partitions = crate::reader::topic_partitions(&consumer, topic, "replay")?;
        let starts = offsets_for_time(&consumer, topic, &partitions, from_ms)?;
        let ends = offsets_for_time(&consumer, topic, &partitions, to_ms)?;
        let mut ranges = BTreeMap::new();
        let mut assignment = TopicPartitionList::new();
        for partition in partitions {
            let (_, high) = consumer.fetch_watermarks(topic, partition, REQUEST_TIMEOUT)?;
            // No offset at or after the time: the window starts (or ends) past the last record.
            let start = starts.get(&partition).copied().flatten().unwrap_or(high);
            let end = ends.get(&partition).copied().flatten().unwrap_or(high);
            let range = PartitionRange {
                partition,
                start,
                end,
                next: start,
            };
            if !range.done() {
                assignment.add_partition_offset(topic, partition, Offset::Offset(start))?;
            }
            ranges.insert(partition, range);
        }
        consumer.assign(&assignment)?;
        Ok(Self {
            consumer,
            topic: topic.to_owned(),
            from_ms,
            to_ms,
            ranges,
            skipped_out_of_time: 0,
        })
    }

    /// The window's offset range in each partition, and how far each has been read.
    pub fn ranges(&self) -> Vec<PartitionRange> {
        self.ranges.values().copied().collect()
    }

    /// Records in the window's offset ranges (an upper bound of what will be returned:
    /// transaction markers and aborted records occupy offsets too).
    pub fn total(&self) -> u64 {
        self.ranges
            .values()
            .map(|r| (r.end - r.start).max(0) as u64)
            .sum()
    }

    /// Offsets read so far, over all partitions.
    pub fn consumed(&self) -> u64 {
        self.ranges
            .values()
            .map(|r| (r.next.min(r.end) - r.start).max(0) as u64)
            .sum()
    }

    /// Whether every partition has been read to the window's end.
    pub fn is_done(&self) -> bool {
        self.ranges.values().all(PartitionRange::done)
    }

    /// Up to `max` records of the window, waiting at most `wait` for the first; an empty
    /// batch once [`WindowReader::is_done`].
    pub fn next_batch(
        &mut self,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<ReadRecord>, KafkaError> {
        let mut batch = Vec::new();
        let mut timeout = wait;
        while batch.len() < max && !self.is_done() {
            match self.consumer.poll(timeout) {
                None => break,
                Some(Err(rdkafka::error::KafkaError::PartitionEOF(partition))) => {
                    // The end of what is readable now (for read_committed, the last stable
                    // offset). Once the partition holds the whole window, everything in it
                    // has been read: the offsets left are transaction markers or aborted.
                    if let Some(range) = self.ranges.get_mut(&partition)
                        && let Ok((_, high)) =
                            self.consumer
                                .fetch_watermarks(&self.topic, partition, REQUEST_TIMEOUT)
                        && high >= range.end
                    {
                        range.next = range.end;
                    }
                }
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(message)) => {
                    let record = ReadRecord::from_message(&message);
                    let Some(range) = self.ranges.get_mut(&record.partition) else {
                        continue;
                    };
                    if record.offset < range.next || range.done() {
                        continue;
                    }
                    range.next = record.offset + 1;
                    if record.offset >= range.end {
                        range.next = range.end;
                        continue;
                    }
                    let in_time = record
                        .timestamp_ms
                        .is_none_or(|ts| ts >= self.from_ms && ts < self.to_ms);
                    if in_time {
                        batch.push(record);
                    } else {
                        self.skipped_out_of_time += 1;
                    }
                }
            }
            timeout = Duration::ZERO;
        }
        Ok(batch)
    }
}

/// The first offset at or after `time_ms` in each partition; `None` when there is none.
fn offsets_for_time(
    consumer: &BaseConsumer<EndIsNotAnError>,
    topic: &str,
    partitions: &[i32],
    time_ms: i64,
) -> Result<BTreeMap<i32, Option<i64>>, KafkaError> {
    let mut query = TopicPartitionList::new();
    for partition in partitions {
        query.add_partition_offset(topic, *partition, Offset::Offset(time_ms))?;
    }
    let found = consumer.offsets_for_times(query, REQUEST_TIMEOUT)?;
    Ok(found
        .elements()
        .iter()
        .map(|e| {
            let offset = match e.offset() {
                Offset::Offset(o) if o >= 0 => Some(o),
                _ => None,
            };
            (e.partition(), offset)
        })
        .collect())
}
