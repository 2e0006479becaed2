//! The concurrent read-process-write loop of the delivery services: records are handed to a
//! [`Dispatcher`] one by one and finish in any order; each finished record's outputs (attempt
//! record, retry record, dead letter) are written in the same Kafka transaction that commits
//! its partition's offset past it.
//!
//! # How it keeps its promises
//! - **Offsets follow durability.** An [`OffsetTracker`] releases, per partition, only the done
//!   prefix of dispatched records; their outputs and the next offset go in one transaction.
//!   A crash re-reads exactly the records whose outcome was not written.
//! - **Bounded.** A partition with `max_pending_per_partition` records dispatched and not
//!   released is paused until half of them are; librdkafka's prefetch is capped too.
//! - **Due times.** A record whose due-time header (`due_header`, epoch milliseconds) lies in
//!   the future pauses its partition and is read again when due: a retry tier waits for its
//!   head, and the records behind it (due no earlier, by construction) wait with it.
//! - **Rebalances and aborts.** A revoked partition's records are given up (their completions
//!   are ignored; the next owner reads them again); an aborted transaction rewinds the
//!   partitions it covered to their last committed offsets. Either way an attempt may be made
//!   twice, with the same notification id, never lost.
//! - **Shutdown.** When `stop` is set the loop stops fetching, waits up to `drain_timeout` for
//!   the records in flight, commits what finished and returns.
//!
//! Rebalance callbacks and librdkafka's transactional calls run on the calling thread, so run
//! the loop on a thread of its own.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError as RdKafkaError, RDKafkaErrorCode};
use rdkafka::{Offset, TopicPartitionList};

use crate::pipeline::{PipelineContext, exactly_once_consumer};
use crate::reader::ReadRecord;
use crate::tracker::{OffsetTracker, TopicPartition};
use crate::transaction::{CommitStats, OutRecord, Transactor};
use crate::{KafkaConfig, KafkaError};

/// How the worker consumes, bounds and commits.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The consumer group.
    pub group_id: String,
    /// The producer's `transactional.id`, stable per replica.
    pub transactional_id: String,
    /// Topics to consume.
    pub topics: Vec<String>,
    /// `group.protocol`: `consumer` (KIP-848) or `classic`.
    pub group_protocol: String,
    /// `group.instance.id` (static membership), if any.
    pub group_instance_id: Option<String>,
    /// A header holding the epoch milliseconds before which a record must not be dispatched.
    pub due_header: Option<String>,
    /// Records of one partition dispatched and not yet committed, at most.
    pub max_pending_per_partition: usize,
    /// How often finished records are committed.
    pub commit_interval: Duration,
    /// `transaction.timeout.ms`.
    pub transaction_timeout: Duration,
    /// How long a stop waits for records in flight before committing what finished.
    pub drain_timeout: Duration,
}

impl WorkerConfig {
    /// Defaults for a delivery service: 1,000 pending records per partition, commits every
    /// 100 ms, 10 s to drain.
    pub fn new(group_id: &str, transactional_id: &str, topics: Vec<String>) -> Self {
        Self {
            group_id: group_id.to_owned(),
            transactional_id: transactional_id.to_owned(),
            topics,
            group_protocol: "consumer".to_owned(),
            group_instance_id: None,
            due_header: None,
            max_pending_per_partition: 1000,
            commit_interval: Duration::from_millis(100),
            transaction_timeout: crate::transaction::DEFAULT_TRANSACTION_TIMEOUT,
            drain_timeout: Duration::from_secs(10),
        }
    }
}

/// Messages from completions to the loop.
enum Finished {
    Done {
        tp: TopicPartition,
        offset: i64,
        epoch: u64,
        outputs: Vec<OutRecord>,
    },
    /// The completion was dropped without an outcome (a panicking task): read it again.
    Abandoned { tp: TopicPartition, epoch: u64 },
}

/// The handle a dispatched record is finished with. Dropping it unfinished makes the worker
/// read the record's partition again from its last committed offset, so a lost task never
/// stalls a partition or loses a record.
pub struct Completion {
    tx: mpsc::Sender<Finished>,
    tp: TopicPartition,
    offset: i64,
    epoch: u64,
    finished: bool,
}

impl Completion {
    /// Finishes the record: `outputs` are written, and its offset committed, in the
    /// transaction that covers it.
    pub fn finish(mut self, outputs: Vec<OutRecord>) {
        self.finished = true;
        let _ = self.tx.send(Finished::Done {
            tp: self.tp.clone(),
            offset: self.offset,
            epoch: self.epoch,
            outputs,
        });
    }

    /// The record's topic, partition and offset.
    pub fn position(&self) -> (&str, i32, i64) {
        (&self.tp.0, self.tp.1, self.offset)
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.tx.send(Finished::Abandoned {
                tp: self.tp.clone(),
                epoch: self.epoch,
            });
        }
    }
}

/// Takes records from the loop; owns everything but Kafka.
pub trait Dispatcher {
    /// Starts work on one record; must not block (hand it to tasks or threads).
    fn dispatch(&mut self, record: ReadRecord, done: Completion);
    /// Called after each committed transaction.
    fn committed(&mut self, _stats: &CommitStats) {}
    /// Called after an aborted transaction, whose records will be read again.
    fn aborted(&mut self, _reason: &str) {}
    /// Called with the consumer lag of each assigned partition, every few seconds.
    fn lag(&mut self, _lags: &[(String, i32, i64)]) {}
}

/// Why a partition is paused.
#[derive(Debug, Clone, Copy)]
enum Why {
    /// Its head is not due until then.
    Due(Instant),
    /// Too many of its records are pending.
    Full,
}

/// A paused partition: why, and the offset it resumes from.
#[derive(Debug, Clone, Copy)]
struct Pause {
    why: Why,
    resume_from: i64,
}

/// The consumer, the transactional producer and the bookkeeping of one worker.
pub struct Worker {
    config: WorkerConfig,
    consumer: BaseConsumer<PipelineContext>,
    transactor: Transactor,
    tracker: OffsetTracker,
    paused: HashMap<TopicPartition, Pause>,
    /// Next offset to read per partition, for pausing without losing prefetched records.
    next_read: HashMap<TopicPartition, i64>,
}

impl Worker {
    /// Creates and subscribes the consumer and creates the transactional producer.
    pub fn new(kafka: &KafkaConfig, config: WorkerConfig) -> Result<Self, KafkaError> {
        let consumer: BaseConsumer<PipelineContext> = exactly_once_consumer(
            kafka,
            &config.group_id,
            &config.group_protocol,
            config.group_instance_id.as_deref(),
        )
        // Bounds the prefetch queue: a large backlog must not become a large heap.
        .set("queued.max.messages.kbytes", "16384")
        // A delivery service is judged on latency: do not let an idle partition's fetch
        // hold back the others' for librdkafka's default 500 ms.
        .set("fetch.wait.max.ms", "100")
        .create_with_context(PipelineContext::default())?;
        let topics: Vec<&str> = config.topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics)?;
        let transactor =
            Transactor::new(kafka, &config.transactional_id, config.transaction_timeout)?;
        Ok(Self {
            config,
            consumer,
            transactor,
            tracker: OffsetTracker::default(),
            paused: HashMap::new(),
            next_read: HashMap::new(),
        })
    }

    /// Runs until `stop` is set, then drains and commits. Only errors no retry can fix end it.
    pub fn run(
        &mut self,
        dispatcher: &mut dyn Dispatcher,
        stop: &AtomicBool,
    ) -> Result<(), KafkaError> {
        let (tx, rx) = mpsc::channel();
        let mut last_commit = Instant::now();
        let mut drain_deadline: Option<Instant> = None;
        loop {
            if stop.load(AtomicOrdering::SeqCst) && drain_deadline.is_none() {
                drain_deadline = Some(Instant::now() + self.config.drain_timeout);
                self.pause_all();
                tracing::info!(
                    in_flight = self.tracker.in_flight_total(),
                    "stopping: draining records in flight"
                );
            }
            if let Some(deadline) = drain_deadline {
                self.take_finished(&rx, Duration::from_millis(20));
                if self.tracker.in_flight_total() == 0 || Instant::now() >= deadline {
                    self.commit(dispatcher);
                    return Ok(());
                }
                // Keep serving the group (heartbeats, callbacks) without taking records: every
                // partition is paused, and a record fetched before that is read again later.
                let _ = self.consumer.poll(Duration::ZERO);
                continue;
            }
            let got = self.poll_records(dispatcher, &tx)?;
            self.handle_revocations();
            if let Some(lags) = self.consumer.context().take_lags() {
                dispatcher.lag(&lags);
            }
            let wait = if got == 0 {
                Duration::from_millis(5)
            } else {
                Duration::ZERO
            };
            self.take_finished(&rx, wait);
            self.resume_ready();
            if last_commit.elapsed() >= self.config.commit_interval {
                self.commit(dispatcher);
                last_commit = Instant::now();
            }
        }
    }

    /// Polls up to a few hundred records and dispatches those that are due.
    fn poll_records(
        &mut self,
        dispatcher: &mut dyn Dispatcher,
        tx: &mpsc::Sender<Finished>,
    ) -> Result<usize, KafkaError> {
        let mut got = 0;
        let mut timeout = Duration::from_millis(10);
        while got < 500 {
            let message = match self.consumer.poll(timeout) {
                None => break,
                Some(Ok(message)) => ReadRecord::from_message(&message),
                Some(Err(RdKafkaError::MessageConsumption(
                    RDKafkaErrorCode::UnknownTopicOrPartition,
                ))) => continue,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "consumer error");
                    break;
                }
            };
            timeout = Duration::ZERO;
            got += 1;
            let tp = (message.topic.clone(), message.partition);
            if self.paused.contains_key(&tp) {
                // Fetched before the pause took effect; it is read again on resume.
                continue;
            }
            if let Some(due) = self.due_at(&message) {
                self.pause(&tp, message.offset, Why::Due(due));
                continue;
            }
            self.next_read.insert(tp.clone(), message.offset + 1);
            let epoch = self.tracker.dispatched(&tp, message.offset);
            let completion = Completion {
                tx: tx.clone(),
                tp: tp.clone(),
                offset: message.offset,
                epoch,
                finished: false,
            };
            dispatcher.dispatch(message, completion);
            if self.tracker.pending(&tp) >= self.config.max_pending_per_partition {
                let next = self.next_read[&tp];
                self.pause(&tp, next, Why::Full);
            }
        }
        Ok(got)
    }

    /// When the record must wait: the instant its due-time header names, if in the future.
    fn due_at(&self, record: &ReadRecord) -> Option<Instant> {
        let header = self.config.due_header.as_deref()?;
        let due_ms: i64 = std::str::from_utf8(record.header(header)?)
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let now_ms = wall_clock_ms();
        (due_ms > now_ms).then(|| Instant::now() + Duration::from_millis((due_ms - now_ms) as u64))
    }

    /// Pauses `tp` and sets its position to `offset`, where it resumes.
    fn pause(&mut self, tp: &TopicPartition, offset: i64, why: Why) {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&tp.0, tp.1);
        if let Err(error) = self.consumer.pause(&tpl) {
            tracing::warn!(%error, topic = %tp.0, partition = tp.1, "pause failed");
            return;
        }
        self.seek(tp, offset);
        self.paused.insert(
            tp.clone(),
            Pause {
                why,
                resume_from: offset,
            },
        );
    }

    fn seek(&self, tp: &TopicPartition, offset: i64) {
        if let Err(error) =
            self.consumer
                .seek(&tp.0, tp.1, Offset::Offset(offset), Duration::from_secs(10))
        {
            tracing::error!(%error, topic = %tp.0, partition = tp.1, offset, "seek failed");
        }
    }

    /// Resumes partitions whose head is due or whose pending records have halved.
    fn resume_ready(&mut self) {
        let now = Instant::now();
        let half = (self.config.max_pending_per_partition / 2).max(1);
        let ready: Vec<(TopicPartition, i64)> = self
            .paused
            .iter()
            .filter(|(tp, pause)| match pause.why {
                Why::Due(at) => at <= now && self.tracker.pending(tp) < half * 2,
                Why::Full => self.tracker.pending(tp) < half,
            })
            .map(|(tp, pause)| (tp.clone(), pause.resume_from))
            .collect();
        if ready.is_empty() {
            return;
        }
        let mut tpl = TopicPartitionList::new();
        for (tp, _) in &ready {
            tpl.add_partition(&tp.0, tp.1);
            self.paused.remove(tp);
        }
        if let Err(error) = self.consumer.resume(&tpl) {
            tracing::warn!(%error, "resume failed");
        }
        // librdkafka resumes a partition from the offset after the last record it handed
        // out, not from where a seek during the pause put it: records fetched before the
        // pause (and dropped here) would be skipped. Seek again, now that it runs.
        for (tp, offset) in &ready {
            self.seek(tp, *offset);
        }
    }

    fn pause_all(&mut self) {
        if let Ok(assignment) = self.consumer.assignment() {
            let _ = self.consumer.pause(&assignment);
        }
    }

    /// Gives up the records of partitions revoked during the last poll.
    fn handle_revocations(&mut self) {
        let mut was_paused = TopicPartitionList::new();
        for tp in self.consumer.context().take_revoked() {
            self.tracker.reset(&tp);
            if self.paused.remove(&tp).is_some() {
                was_paused.add_partition(&tp.0, tp.1);
            }
            self.next_read.remove(&tp);
        }
        // Forgotten here, so not left paused in librdkafka either: if the partition comes
        // back, nothing would ever resume it. (An error for a partition no longer assigned
        // is expected and harmless.)
        if was_paused.count() > 0 {
            let _ = self.consumer.resume(&was_paused);
        }
    }

    /// Applies finished records, waiting up to `wait` for the first.
    fn take_finished(&mut self, rx: &mpsc::Receiver<Finished>, wait: Duration) {
        let mut next = if wait.is_zero() {
            rx.try_recv().ok()
        } else {
            rx.recv_timeout(wait).ok()
        };
        let mut rewind = HashSet::new();
        while let Some(finished) = next {
            match finished {
                Finished::Done {
                    tp,
                    offset,
                    epoch,
                    outputs,
                } => {
                    self.tracker.completed(&tp, offset, epoch, outputs);
                }
                Finished::Abandoned { tp, epoch } => {
                    tracing::error!(topic = %tp.0, partition = tp.1, "a record was abandoned without an outcome; reading its partition again");
                    rewind.insert((tp, epoch));
                }
            }
            next = rx.try_recv().ok();
        }
        for (tp, epoch) in rewind {
            // An abandoned record of an epoch already given up is read again anyway.
            if self.tracker.epoch(&tp) != Some(epoch) {
                continue;
            }
            if let Some(offset) = self.tracker.reset(&tp) {
                self.seek(&tp, offset);
                self.tracker.resume_at(&tp, offset);
            }
        }
    }

    /// Commits the released records; on abort, rewinds their partitions.
    fn commit(&mut self, dispatcher: &mut dyn Dispatcher) {
        let committable = self.tracker.take_committable();
        if committable.is_empty() {
            return;
        }
        let group = self.consumer.group_metadata();
        match self.transactor.commit(
            &committable.outputs,
            &committable.offsets,
            group.as_ref(),
            committable.records,
        ) {
            Ok(stats) => dispatcher.committed(&stats),
            Err(reason) => {
                tracing::warn!(%reason, records = committable.records, "transaction aborted; reading its records again");
                dispatcher.aborted(&reason);
                let mut resume = TopicPartitionList::new();
                for (tp, offset) in committable.rewind_to {
                    self.tracker.reset(&tp);
                    if self.paused.remove(&tp).is_some() {
                        resume.add_partition(&tp.0, tp.1);
                    }
                    self.seek(&tp, offset);
                    self.tracker.resume_at(&tp, offset);
                }
                if resume.count() > 0
                    && let Err(error) = self.consumer.resume(&resume)
                {
                    tracing::warn!(%error, "resume after an abort failed");
                }
            }
        }
    }
}

/// Wall-clock epoch milliseconds (due-time headers are wall-clock).
fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
