//! A transactional producer that writes a set of output records and a consumer group's input
//! offsets in one Kafka transaction, and recovers by itself: an abortable error aborts, a
//! fatal one (fencing, an invalid state) recreates the producer. Both exactly-once loops
//! ([`crate::pipeline`] and [`crate::worker`]) commit through it.
//!
//! librdkafka's transactional calls block, so callers run it on a thread of their own.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::{KafkaError as RdKafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::watchdog::{Watchdog, exit_stuck};
use crate::{KafkaConfig, KafkaError};

/// `transaction.timeout.ms` of the pipelines and workers: Kafka Streams' exactly-once default.
/// Transactions here last milliseconds; the bound matters when the broker goes away
/// mid-transaction: its records then time out (librdkafka caps `message.timeout.ms` at this),
/// the transaction aborts and the producer is recreated, so a restarted broker is back in use
/// within seconds (with 30 s, the chaos benchmark's router idled ~20 s after it was back).
pub(crate) const DEFAULT_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a blocking call on a running transaction may take before it counts as failed:
/// the transaction timeout. A call waits this long only when the broker is gone (commits take
/// milliseconds); longer waits stacked up behind one another after a broker restart.
pub(crate) const TXN_CALL_TIMEOUT: Duration = DEFAULT_TRANSACTION_TIMEOUT;

/// How long `init_transactions` may take: on a fresh cluster the first one creates and loads
/// the transaction state topic, which takes longer than any call on a running transaction.
const INIT_TIMEOUT: Duration = Duration::from_secs(30);

/// A record to write in the current transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutRecord {
    /// The topic.
    pub topic: String,
    /// The key, if any.
    pub key: Option<Vec<u8>>,
    /// The value; `None` writes a tombstone.
    pub value: Option<Vec<u8>>,
    /// Headers, in order.
    pub headers: Vec<(String, Vec<u8>)>,
}

/// Figures of one committed transaction.
#[derive(Debug, Clone, Copy)]
pub struct CommitStats {
    /// Input records whose offsets it committed.
    pub records: usize,
    /// Output records it wrote.
    pub outputs: usize,
    /// From `begin_transaction` to the end of `commit_transaction`.
    pub elapsed: Duration,
}

/// The offsets to commit: per (topic, partition), the next offset to read.
pub(crate) type NextOffsets = BTreeMap<(String, i32), i64>;

/// A transactional producer with its recovery rules.
pub(crate) struct Transactor {
    kafka: KafkaConfig,
    transactional_id: String,
    transaction_timeout: Duration,
    producer: ThreadedProducer<Deliveries>,
    /// Ends the process when a commit hangs past every timeout (see [`crate::watchdog`]).
    watchdog: Watchdog,
}

impl Transactor {
    /// Creates the producer and initialises transactions, which fences an earlier producer
    /// with the same `transactional.id` and aborts its open transaction.
    pub(crate) fn new(
        kafka: &KafkaConfig,
        transactional_id: &str,
        transaction_timeout: Duration,
    ) -> Result<Self, KafkaError> {
        let producer = create_producer(kafka, transactional_id, transaction_timeout)?;
        Ok(Self {
            kafka: kafka.clone(),
            transactional_id: transactional_id.to_owned(),
            transaction_timeout,
            producer,
            // A commit makes at most four blocking calls of TXN_CALL_TIMEOUT each.
            watchdog: Watchdog::spawn(
                transactional_id,
                TXN_CALL_TIMEOUT * 6,
                Duration::from_secs(1),
                exit_stuck(format!("the transaction of {transactional_id}")),
            ),
        })
    }

    /// Writes `outputs` and commits `offsets` for the group in one transaction. `Err` holds
    /// the reason when the transaction was aborted; the producer is ready for the next one
    /// either way.
    pub(crate) fn commit(
        &mut self,
        outputs: &[OutRecord],
        offsets: &NextOffsets,
        group: Option<&ConsumerGroupMetadata>,
        records: usize,
    ) -> Result<CommitStats, String> {
        let started = Instant::now();
        self.watchdog.begin();
        let result = self.commit_or_recover(outputs, offsets, group, records, started);
        self.watchdog.end();
        result
    }

    fn commit_or_recover(
        &mut self,
        outputs: &[OutRecord],
        offsets: &NextOffsets,
        group: Option<&ConsumerGroupMetadata>,
        records: usize,
        started: Instant,
    ) -> Result<CommitStats, String> {
        match self.try_commit(outputs, offsets, group) {
            Ok(()) => Ok(CommitStats {
                records,
                outputs: outputs.len(),
                elapsed: started.elapsed(),
            }),
            Err(e) => {
                let reason = e.to_string();
                let fatal = matches!(&e, RdKafkaError::Transaction(t) if t.is_fatal());
                // Recreating waits for the broker as long as it takes: not a hang.
                if fatal {
                    self.watchdog.end();
                    self.recreate();
                } else if let Err(abort) = self.producer.abort_transaction(TXN_CALL_TIMEOUT) {
                    tracing::warn!(error = %abort, "abort failed; recreating the producer");
                    self.watchdog.end();
                    self.recreate();
                }
                Err(reason)
            }
        }
    }

    fn try_commit(
        &self,
        outputs: &[OutRecord],
        offsets: &NextOffsets,
        group: Option<&ConsumerGroupMetadata>,
    ) -> Result<(), RdKafkaError> {
        self.producer.begin_transaction()?;
        let reported_before = self.producer.context().reported.load(Ordering::SeqCst);
        for out in outputs {
            self.send(out)?;
        }
        if !offsets.is_empty() {
            let group = group.ok_or(RdKafkaError::MessageConsumption(RDKafkaErrorCode::State))?;
            let mut tpl = TopicPartitionList::new();
            for ((topic, partition), offset) in offsets {
                tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset))?;
            }
            self.producer
                .send_offsets_to_transaction(&tpl, group, TXN_CALL_TIMEOUT)?;
        }
        self.await_deliveries(reported_before + outputs.len() as u64);
        let mut retries = 0;
        loop {
            match self.producer.commit_transaction(TXN_CALL_TIMEOUT) {
                Ok(()) => return Ok(()),
                Err(RdKafkaError::Transaction(e)) if e.is_retriable() && retries < 3 => {
                    retries += 1;
                    tracing::warn!(error = %e, retries, "retrying commit_transaction");
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Waits until every record of the transaction is acknowledged: until the delivery
    /// reports counted reach `reports`, then until librdkafka has released the last of them.
    ///
    /// `commit_transaction` flushes by itself, but rust-rdkafka's flush serves delivery
    /// reports in 100 ms polls: every commit took ~101 ms however small the transaction.
    /// Polling in 1 ms steps instead spun the CPU (rust-rdkafka rounds the rest of a poll's
    /// timeout down to whole milliseconds, so the last one never blocks): a third of the
    /// router's CPU went to `clock_gettime`, on cores it shares with its routing threads.
    /// Here the producer's own thread serves the reports and the last expected one wakes
    /// this thread. Failed deliveries still fail the commit, which aborts.
    fn await_deliveries(&self, reports: u64) {
        let deadline = Instant::now() + TXN_CALL_TIMEOUT;
        let deliveries = self.producer.context();
        deliveries.wake_at.store(reports, Ordering::SeqCst);
        let mut guard = deliveries.lock.lock().unwrap_or_else(|e| e.into_inner());
        while deliveries.reported.load(Ordering::SeqCst) < reports {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            guard = deliveries
                .arrived
                .wait_timeout(guard, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        drop(guard);
        deliveries.wake_at.store(u64::MAX, Ordering::SeqCst);
        // The report's callback runs before librdkafka frees its messages (which is what
        // `commit_transaction`'s flush waits for): a few microseconds more. Reports of an
        // earlier, aborted transaction counted here would end the wait above early; this
        // loop then waits for the rest.
        while self.producer.in_flight_count() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_micros(50));
        }
    }

    /// Enqueues one record, waiting for room when the producer's queue is full.
    fn send(&self, out: &OutRecord) -> Result<(), RdKafkaError> {
        let headers = out.headers.iter().fold(OwnedHeaders::new(), |all, (k, v)| {
            all.insert(Header {
                key: k,
                value: Some(v),
            })
        });
        let mut record = BaseRecord::<[u8], [u8]>::to(&out.topic).headers(headers);
        if let Some(key) = &out.key {
            record = record.key(key);
        }
        if let Some(value) = &out.value {
            record = record.payload(value);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((RdKafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    // The producer's thread frees room as reports arrive.
                    record = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    fn recreate(&mut self) {
        loop {
            match create_producer(
                &self.kafka,
                &self.transactional_id,
                self.transaction_timeout,
            ) {
                Ok(producer) => {
                    self.producer = producer;
                    return;
                }
                Err(e) => {
                    tracing::error!(error = %e, "recreating the transactional producer failed; retrying");
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
    }
}

/// Counts delivery reports (served on the producer's own thread) and wakes the committing
/// thread when the count it waits for is reached.
pub(crate) struct Deliveries {
    /// Reports served since the producer was created.
    reported: AtomicU64,
    /// The count at which to wake the committing thread; `u64::MAX` when nobody waits.
    wake_at: AtomicU64,
    lock: Mutex<()>,
    arrived: Condvar,
}

impl Default for Deliveries {
    fn default() -> Self {
        Self {
            reported: AtomicU64::new(0),
            wake_at: AtomicU64::new(u64::MAX),
            lock: Mutex::new(()),
            arrived: Condvar::new(),
        }
    }
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, _result: &DeliveryResult<'_>, _opaque: ()) {
        let reported = self.reported.fetch_add(1, Ordering::SeqCst) + 1;
        if reported >= self.wake_at.load(Ordering::SeqCst) {
            // Taking the lock orders this after the waiter's check: no lost wake-up.
            let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.arrived.notify_all();
        }
    }
}

fn create_producer(
    kafka: &KafkaConfig,
    transactional_id: &str,
    transaction_timeout: Duration,
) -> Result<ThreadedProducer<Deliveries>, KafkaError> {
    let producer: ThreadedProducer<Deliveries> = kafka
        .client_config()
        .set("transactional.id", transactional_id)
        .set(
            "transaction.timeout.ms",
            transaction_timeout.as_millis().to_string(),
        )
        .set("linger.ms", "5")
        .set("compression.type", "lz4")
        .set("queue.buffering.max.messages", "1000000")
        .create_with_context(Deliveries::default())?;
    producer.init_transactions(INIT_TIMEOUT)?;
    Ok(producer)
}
