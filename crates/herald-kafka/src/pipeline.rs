//! The transactional read-process-write loop: consume a batch, let a [`BatchProcessor`] turn
//! it into output records, and write the outputs and the batch's input offsets in one Kafka
//! transaction. Readers downstream use `read_committed`, so every input record's outputs
//! appear exactly once, whatever crashes, rebalances or fencing happen in between.
//!
//! # How it stays exactly once
//! - Offsets advance only through `send_offsets_to_transaction` in the transaction that holds
//!   the outputs (auto-commit and auto offset store are off).
//! - An aborted transaction rewinds the consumer to the batch's first offsets (otherwise the
//!   next fetch would skip the batch); a fatal producer error (fencing) recreates the producer.
//! - Rebalance callbacks run only inside `poll`, and the loop polls only while no transaction
//!   is open. A batch during whose collection the assignment changed is dropped and its
//!   partitions rewound, so records of a partition that moved are never processed by two
//!   members; a zombie member's late commit is refused by the group coordinator (KIP-447).
//! - A processor may stop short of the batch's end (a retryable failure such as the schema
//!   registry being down): the finished prefix commits, the rest is rewound and re-read after
//!   a pause, so nothing is lost or reordered.
//!
//! librdkafka's transactional calls block, so the loop runs on a thread of its own.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError as RdKafkaError, RDKafkaErrorCode};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::reader::ReadRecord;
use crate::transaction::{CommitStats, NextOffsets, OutRecord, Transactor};
use crate::{KafkaConfig, KafkaError};

/// How the loop consumes and commits.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// The consumer group.
    pub group_id: String,
    /// The producer's `transactional.id`. Keep it stable across restarts of one instance: a
    /// restarted instance then aborts its predecessor's open transaction at once instead of
    /// leaving read_committed readers waiting for the transaction timeout.
    pub transactional_id: String,
    /// Topics to consume; a name starting with `^` is a regular expression.
    pub topics: Vec<String>,
    /// The most records one transaction covers.
    pub max_batch_records: usize,
    /// How long to keep filling a batch after its first record.
    pub max_batch_wait: Duration,
    /// `transaction.timeout.ms`: how long the broker waits before aborting an open transaction
    /// of a producer that vanished.
    pub transaction_timeout: Duration,
    /// `group.protocol`: `consumer` (KIP-848, incremental and fast) or `classic`.
    pub group_protocol: String,
    /// `group.instance.id` (static membership): a member restarted with the same id takes
    /// its partitions back at once instead of waiting for the broker to time out the member
    /// that died (`group.consumer.session.timeout.ms`, 45 s by default). Set it to a stable id
    /// per replica; `None` makes a dynamic member.
    pub group_instance_id: Option<String>,
}

/// The most records one transaction covers by default. A transaction costs about the same
/// whatever its size: a produce request and a commit marker per output partition, the
/// coordinator's round trips. With a backlog, 5,000-record transactions let the router keep
/// up with a raw passthrough (router benchmark: ratio 0.80–0.87, against 0.54–0.79 with
/// 2,000); 10,000 gained little more (0.82–0.89). The cost is memory: the router's peak RSS
/// draining a 1,000,000-event backlog was 167 MiB at 2,000, 218–233 at 5,000 and 275–308 at
/// 10,000. With a trickle of events `max_batch_wait` closes each batch first.
pub const DEFAULT_MAX_BATCH_RECORDS: usize = 5_000;

impl PipelineConfig {
    /// Defaults suited to Herald's services: batches of up to
    /// [`DEFAULT_MAX_BATCH_RECORDS`] records or 20 ms.
    pub fn new(group_id: &str, transactional_id: &str, topics: Vec<String>) -> Self {
        Self {
            group_id: group_id.to_owned(),
            transactional_id: transactional_id.to_owned(),
            topics,
            max_batch_records: DEFAULT_MAX_BATCH_RECORDS,
            max_batch_wait: Duration::from_millis(20),
            transaction_timeout: crate::transaction::DEFAULT_TRANSACTION_TIMEOUT,
            group_protocol: "consumer".to_owned(),
            group_instance_id: None,
        }
    }
}

/// What a processor made of a batch.
#[derive(Debug, Default)]
pub struct BatchOutcome {
    /// The records to write for the processed prefix of the batch.
    pub outputs: Vec<OutRecord>,
    /// How many records of the batch, from its start, were processed; the rest are read again.
    pub processed: usize,
    /// When the batch was cut short: how long to wait before reading the rest again.
    pub pause: Option<Duration>,
}

/// Turns consumed batches into output records; the loop owns everything Kafka.
pub trait BatchProcessor {
    /// Processes a batch (records of several partitions, each partition in offset order).
    fn process(&mut self, batch: &[ReadRecord]) -> BatchOutcome;
    /// Called after each committed transaction.
    fn committed(&mut self, _stats: &CommitStats) {}
    /// Called after an aborted transaction, whose batch will be read again.
    fn aborted(&mut self, _reason: &str) {}
    /// Called with the consumer lag of each assigned partition, every few seconds.
    fn lag(&mut self, _lags: &[(String, i32, i64)]) {}
}

/// Observes rebalances (which happen only inside `poll`) and statistics; shared by both
/// exactly-once loops.
#[derive(Default)]
pub(crate) struct PipelineContext {
    /// Bumped on every assignment change, so the loop knows a batch straddled one.
    rebalances: AtomicU64,
    /// Partitions revoked since the loop last looked.
    revoked: Mutex<HashSet<(String, i32)>>,
    /// Consumer lag per partition from the latest statistics.
    lags: Mutex<Option<Vec<(String, i32, i64)>>>,
}

impl PipelineContext {
    /// The partitions revoked since the last call.
    pub(crate) fn take_revoked(&self) -> HashSet<(String, i32)> {
        std::mem::take(&mut *self.revoked.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The lags reported since the last call, if any.
    pub(crate) fn take_lags(&self) -> Option<Vec<(String, i32, i64)>> {
        self.lags.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

impl ClientContext for PipelineContext {
    fn stats(&self, statistics: Statistics) {
        let lags = statistics
            .topics
            .iter()
            .flat_map(|(topic, t)| {
                t.partitions
                    .values()
                    .filter(|p| p.partition >= 0 && p.consumer_lag >= 0)
                    .map(move |p| (topic.clone(), p.partition, p.consumer_lag))
            })
            .collect();
        *self.lags.lock().unwrap_or_else(|e| e.into_inner()) = Some(lags);
    }
}

impl ConsumerContext for PipelineContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        self.rebalances.fetch_add(1, AtomicOrdering::SeqCst);
        if let Rebalance::Revoke(partitions) = rebalance {
            let mut revoked = self.revoked.lock().unwrap_or_else(|e| e.into_inner());
            for p in partitions.elements() {
                revoked.insert((p.topic().to_owned(), p.partition()));
            }
            tracing::info!(partitions = partitions.count(), "partitions revoked");
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        self.rebalances.fetch_add(1, AtomicOrdering::SeqCst);
        if let Rebalance::Assign(partitions) = rebalance {
            tracing::info!(partitions = partitions.count(), "partitions assigned");
        }
    }
}

/// The consumer and transactional producer of one pipeline instance.
pub struct Pipeline {
    config: PipelineConfig,
    consumer: BaseConsumer<PipelineContext>,
    transactor: Transactor,
}

impl Pipeline {
    /// Creates the consumer, subscribes it, and creates the producer with transactions
    /// initialised (which fences an earlier producer with the same `transactional.id`).
    pub fn new(kafka: &KafkaConfig, config: PipelineConfig) -> Result<Self, KafkaError> {
        let consumer: BaseConsumer<PipelineContext> = exactly_once_consumer(
            kafka,
            &config.group_id,
            &config.group_protocol,
            config.group_instance_id.as_deref(),
        )
        .create_with_context(PipelineContext::default())?;
        let topics: Vec<&str> = config.topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics)?;
        let transactor =
            Transactor::new(kafka, &config.transactional_id, config.transaction_timeout)?;
        Ok(Self {
            config,
            consumer,
            transactor,
        })
    }

    /// Runs until `stop` is set, then finishes the transaction in flight and returns. Errors
    /// that no retry can fix (a refused configuration) end the loop.
    ///
    /// A fully processed batch is not committed at once: its transaction runs on a second
    /// thread while this one processes the next batch, so the processor never waits for the
    /// broker (the commit's round trips and delivery reports were a third of the router's
    /// time per batch). The next batch is collected *before* that transaction begins, so
    /// `poll` — and with it every rebalance callback — still runs only while no transaction
    /// is open.
    pub fn run(
        &mut self,
        processor: &mut dyn BatchProcessor,
        stop: &AtomicBool,
    ) -> Result<(), KafkaError> {
        // A processed batch and its outputs, waiting to be committed.
        let mut pending: Option<(Vec<ReadRecord>, Vec<OutRecord>)> = None;
        loop {
            let stopping = stop.load(AtomicOrdering::SeqCst);
            if stopping && pending.is_none() {
                return Ok(());
            }
            let rebalances_before = self
                .consumer
                .context()
                .rebalances
                .load(AtomicOrdering::SeqCst);
            // With a batch waiting to commit, an idle source must not hold it back for long.
            let idle_wait = match pending {
                Some(_) => self.config.max_batch_wait,
                None => Duration::from_millis(100),
            };
            let batch = if stopping {
                Vec::new()
            } else {
                self.collect_batch(stop, idle_wait)?
            };
            if let Some(lags) = self.consumer.context().take_lags() {
                processor.lag(&lags);
            }
            let revoked = self.consumer.context().take_revoked();
            if self
                .consumer
                .context()
                .rebalances
                .load(AtomicOrdering::SeqCst)
                != rebalances_before
            {
                // The assignment changed while the batch was filling: records of partitions
                // that moved are someone else's now (the pending batch's too), and records of
                // partitions that came back will be fetched again from the committed offset.
                // Start over from the pending batch.
                let mut all = pending.take().map(|(done, _)| done).unwrap_or_default();
                tracing::info!(
                    records = all.len() + batch.len(),
                    "rebalance during a batch; reading it again"
                );
                all.extend(batch);
                self.rewind(&all, &revoked);
                continue;
            }
            let outcome = match pending.take() {
                None if batch.is_empty() => continue,
                None => processor.process(&batch),
                Some((done, outputs)) => {
                    let group = self.consumer.group_metadata();
                    let transactor = &mut self.transactor;
                    let (committed, outcome) = std::thread::scope(|scope| {
                        let commit = scope.spawn(|| {
                            transactor.commit(
                                &outputs,
                                &next_offsets(&done),
                                group.as_ref(),
                                done.len(),
                            )
                        });
                        let outcome = (!batch.is_empty()).then(|| processor.process(&batch));
                        let committed = commit
                            .join()
                            .unwrap_or_else(|_| Err("the committing thread panicked".to_owned()));
                        (committed, outcome)
                    });
                    match committed {
                        Ok(stats) => processor.committed(&stats),
                        Err(reason) => {
                            // The batch processed meanwhile followed the aborted one: both are
                            // read again.
                            tracing::warn!(%reason, records = done.len(), "transaction aborted; reading the batch again");
                            processor.aborted(&reason);
                            let mut all = done;
                            all.extend(batch);
                            self.rewind(&all, &HashSet::new());
                            continue;
                        }
                    }
                    match outcome {
                        Some(outcome) => outcome,
                        None => continue,
                    }
                }
            };
            let processed = outcome.processed.min(batch.len());
            if processed == batch.len() && outcome.pause.is_none() {
                pending = Some((batch, outcome.outputs));
                continue;
            }
            // Cut short (a retryable failure): commit the finished prefix now, read the rest
            // again after the pause.
            match self.commit(&batch[..processed], outcome.outputs) {
                Ok(Some(stats)) => processor.committed(&stats),
                Ok(None) => {}
                Err(reason) => {
                    tracing::warn!(%reason, records = batch.len(), "transaction aborted; reading the batch again");
                    processor.aborted(&reason);
                    self.rewind(&batch, &HashSet::new());
                    continue;
                }
            }
            self.rewind(&batch[processed..], &HashSet::new());
            if let Some(pause) = outcome.pause {
                pause_unless_stopped(pause, stop);
            }
        }
    }

    /// Polls until the batch is full, or `max_batch_wait` has passed since its first record;
    /// returns an empty batch when nothing arrives within `idle_wait`.
    fn collect_batch(
        &self,
        stop: &AtomicBool,
        idle_wait: Duration,
    ) -> Result<Vec<ReadRecord>, KafkaError> {
        let mut batch = Vec::new();
        let mut first_at: Option<Instant> = None;
        while batch.len() < self.config.max_batch_records && !stop.load(AtomicOrdering::SeqCst) {
            let wait = match first_at {
                None => idle_wait,
                Some(at) => match self.config.max_batch_wait.checked_sub(at.elapsed()) {
                    Some(left) => left,
                    None => break,
                },
            };
            match self.consumer.poll(wait) {
                None if first_at.is_none() => return Ok(batch),
                None => break,
                Some(Ok(message)) => {
                    first_at.get_or_insert_with(Instant::now);
                    batch.push(ReadRecord::from_message(&message));
                }
                Some(Err(RdKafkaError::MessageConsumption(
                    RDKafkaErrorCode::UnknownTopicOrPartition,
                ))) => {}
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "consumer error");
                    if first_at.is_none() {
                        return Ok(batch);
                    }
                    break;
                }
            }
        }
        Ok(batch)
    }

    /// Writes `outputs` and the offsets after `done` in one transaction. `Ok(None)` when there
    /// was nothing to commit; `Err` (the reason) when the transaction was aborted.
    fn commit(
        &mut self,
        done: &[ReadRecord],
        outputs: Vec<OutRecord>,
    ) -> Result<Option<CommitStats>, String> {
        if done.is_empty() && outputs.is_empty() {
            return Ok(None);
        }
        let group = self.consumer.group_metadata();
        self.transactor
            .commit(&outputs, &next_offsets(done), group.as_ref(), done.len())
            .map(Some)
    }

    /// Seeks every partition of `records` back to its first offset there, except partitions in
    /// `skip` (revoked: their next owner starts from the committed offset).
    fn rewind(&self, records: &[ReadRecord], skip: &HashSet<(String, i32)>) {
        let mut first: BTreeMap<(String, i32), i64> = BTreeMap::new();
        for r in records {
            first
                .entry((r.topic.clone(), r.partition))
                .or_insert(r.offset);
        }
        let assigned: HashSet<(String, i32)> = self
            .consumer
            .assignment()
            .map(|tpl| {
                tpl.elements()
                    .iter()
                    .map(|e| (e.topic().to_owned(), e.partition()))
                    .collect()
            })
            .unwrap_or_default();
        let mut seeks = TopicPartitionList::new();
        for ((topic, partition), offset) in first {
            let key = (topic, partition);
            if skip.contains(&key) || !assigned.contains(&key) {
                continue;
            }
            if let Err(e) = seeks.add_partition_offset(&key.0, key.1, Offset::Offset(offset)) {
                tracing::error!(error = %e, topic = %key.0, partition = key.1, "cannot rewind");
            }
        }
        if seeks.count() == 0 {
            return;
        }
        match self
            .consumer
            .seek_partitions(seeks, Duration::from_secs(10))
        {
            Ok(result) => {
                for e in result.elements() {
                    if let Err(error) = e.error() {
                        tracing::error!(%error, topic = e.topic(), partition = e.partition(), "rewind failed");
                    }
                }
            }
            Err(error) => tracing::error!(%error, "rewind failed"),
        }
    }
}

/// The offsets to commit after `done`: per partition, the last processed offset + 1.
fn next_offsets(done: &[ReadRecord]) -> NextOffsets {
    let mut next = NextOffsets::new();
    for r in done {
        let entry = next.entry((r.topic.clone(), r.partition)).or_insert(0);
        *entry = (*entry).max(r.offset + 1);
    }
    next
}

/// The consumer settings both exactly-once loops share: offsets move only through
/// transactions (no auto-commit, no auto offset store), only committed records are read, and
/// statistics report lag every 5 s.
pub(crate) fn exactly_once_consumer(
    kafka: &KafkaConfig,
    group_id: &str,
    group_protocol: &str,
    group_instance_id: Option<&str>,
) -> rdkafka::ClientConfig {
    let mut client_config = kafka.client_config();
    if let Some(instance) = group_instance_id {
        client_config.set("group.instance.id", instance);
    }
    client_config
        .set("group.id", group_id)
        .set("group.protocol", group_protocol)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("statistics.interval.ms", "5000")
        .set("topic.metadata.refresh.interval.ms", "5000");
    client_config
}

/// Sleeps for `pause`, waking early when `stop` is set.
fn pause_unless_stopped(pause: Duration, stop: &AtomicBool) {
    let until = Instant::now() + pause;
    while Instant::now() < until && !stop.load(AtomicOrdering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50).min(until - Instant::now()));
    }
}

/// A stop flag shared between a service's signal handler and its loops.
pub type StopFlag = Arc<AtomicBool>;

#[cfg(test)]
mod tests {
    use super::*;

    fn record(topic: &str, partition: i32, offset: i64) -> ReadRecord {
        ReadRecord {
            topic: topic.to_owned(),
            partition,
            offset,
            timestamp_ms: None,
            key: None,
            value: None,
            headers: Vec::new(),
        }
    }

    #[test]
    fn offsets_to_commit_are_the_last_processed_plus_one_per_partition() {
        let done = [
            record("a", 0, 5),
            record("a", 1, 9),
            record("a", 0, 6),
            record("b", 0, 0),
        ];
        let got: Vec<((String, i32), i64)> = next_offsets(&done).into_iter().collect();
        assert_eq!(
            got,
            [
                (("a".to_owned(), 0), 7),
                (("a".to_owned(), 1), 10),
                (("b".to_owned(), 0), 1),
            ]
        );
    }
}
