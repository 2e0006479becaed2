//! Helpers for tests that run against the real broker started by `scripts/services up`.
//!
//! Every test gets its own topic prefix, so tests run in parallel against one broker and a
//! second run of the suite never reads the first run's leftovers. The broker address comes
//! from `HERALD_TEST_BROKERS` (set by `scripts/test`); when it is missing the helpers panic
//! with a message saying how to start the services, because a broker test that quietly skips
//! itself proves nothing.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::consumer::BaseConsumer;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

pub use crate::reader::{Isolation, ReadRecord};
use crate::reader::{ReadOptions, read_from_beginning};
use crate::{Admin, KafkaConfig, TopicSpec};

/// Reads a required environment variable or explains how to get it set.
fn required_env(name: &str) -> String {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => value,
        _ => panic!(
            "{name} is not set: this test needs the real Kafka broker and schema registry. \
             Run it through `scripts/test`, or start them with `scripts/services up` and \
             export the variables that `scripts/services env` prints."
        ),
    }
}

/// The bootstrap servers of the test broker, from `HERALD_TEST_BROKERS`.
pub fn test_brokers() -> String {
    required_env("HERALD_TEST_BROKERS")
}

/// The base URL of the test schema registry's Confluent-compatible API, from
/// `HERALD_TEST_REGISTRY`.
pub fn test_registry() -> String {
    required_env("HERALD_TEST_REGISTRY")
}

/// A record for [`TestKafka::produce`]: `(key, value, headers as (name, value) pairs)`.
pub type OutgoingRecord<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);

/// One test's view of the broker: its own topic prefix, clients and helpers.
pub struct TestKafka {
    config: KafkaConfig,
    prefix: String,
    admin: Admin,
}

impl TestKafka {
    /// Connects to the broker in `HERALD_TEST_BROKERS` under a prefix unique to this test run.
    pub fn new(test_name: &str) -> Self {
        Self::with_brokers(&test_brokers(), test_name)
    }

    /// Connects to `brokers` (a real broker, or a mock cluster in tests that prove the mock
    /// differs) under a unique prefix.
    pub fn with_brokers(brokers: &str, test_name: &str) -> Self {
        let config = KafkaConfig::new(brokers);
        let admin = Admin::new(&config).expect("the admin client could not be created");
        let sanitized: String = test_name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .take(60)
            .collect();
        // The random part keeps a re-run (or a parallel run) away from earlier data.
        let run = uuid::Uuid::new_v4().simple().to_string();
        let prefix = format!("t-{sanitized}-{}", &run[..8]);
        Self {
            config,
            prefix,
            admin,
        }
    }

    /// This test's prefix; hand it to services under test as their topic prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The connection settings of the broker under test.
    pub fn config(&self) -> &KafkaConfig {
        &self.config
    }

    /// The admin client.
    pub fn admin(&self) -> &Admin {
        &self.admin
    }

    /// The full name of this test's topic `suffix`.
    pub fn topic(&self, suffix: &str) -> String {
        format!("{}.{suffix}", self.prefix)
    }

    /// A consumer-group name unique to this test.
    pub fn group(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.prefix)
    }

    /// Creates this test's topic `suffix` with `partitions` partitions and returns its name.
    pub async fn create_topic(&self, suffix: &str, partitions: i32) -> String {
        let name = self.topic(suffix);
        self.admin
            .ensure_topics(&[TopicSpec::new(&name, partitions)])
            .await
            .unwrap_or_else(|e| panic!("creating topic {name}: {e}"));
        name
    }

    /// An idempotent producer.
    pub fn producer(&self) -> BaseProducer {
        self.config
            .client_config()
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .create()
            .expect("the producer could not be created")
    }

    /// A transactional producer with `transactional.id` = `txn_id`, transactions initialised.
    pub fn transactional_producer(&self, txn_id: &str) -> BaseProducer {
        let producer: BaseProducer = self
            .config
            .client_config()
            .set("transactional.id", txn_id)
            .set("linger.ms", "5")
            .create()
            .expect("the transactional producer could not be created");
        producer
            .init_transactions(Duration::from_secs(30))
            .expect("init_transactions failed");
        producer
    }

    /// A consumer in `group` with auto-commit and auto offset store off, reading from the
    /// earliest offset, as Herald's services do.
    pub fn consumer(&self, group: &str, isolation: Isolation) -> BaseConsumer {
        self.config
            .client_config()
            .set("group.id", group)
            .set("group.protocol", "consumer")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("isolation.level", isolation.as_config())
            .create()
            .expect("the consumer could not be created")
    }

    /// Produces records to `topic` and waits until all are acknowledged.
    pub fn produce(&self, topic: &str, records: &[OutgoingRecord<'_>]) {
        let producer = self.producer();
        for (key, value, headers) in records {
            let headers = headers.iter().fold(OwnedHeaders::new(), |h, (k, v)| {
                h.insert(Header {
                    key: k,
                    value: Some(*v),
                })
            });
            producer
                .send(
                    BaseRecord::to(topic)
                        .key(*key)
                        .payload(*value)
                        .headers(headers),
                )
                .map_err(|(e, _)| e)
                .expect("enqueueing a record failed");
        }
        producer
            .flush(Duration::from_secs(30))
            .expect("flushing the producer failed");
    }

    /// Produces binary records `(key, value, headers)` to `topic` (a `None` value is a
    /// tombstone) and waits until all are acknowledged. For bulk loads: records are only
    /// enqueued one by one and acknowledged together.
    pub fn produce_bytes<'r>(
        &self,
        topic: &str,
        records: impl IntoIterator<Item = (&'r [u8], Option<&'r [u8]>, &'r [(String, String)])>,
    ) {
        let producer = self.producer();
        for (key, value, headers) in records {
            let headers = headers.iter().fold(OwnedHeaders::new(), |h, (k, v)| {
                h.insert(Header {
                    key: k,
                    value: Some(v.as_bytes()),
                })
            });
            let mut record = BaseRecord::<[u8], [u8]>::to(topic)
                .key(key)
                .headers(headers);
            if let Some(value) = value {
                record = record.payload(value);
            }
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((
                        rdkafka::error::KafkaError::MessageProduction(
                            rdkafka::types::RDKafkaErrorCode::QueueFull,
                        ),
                        back,
                    )) => {
                        record = back;
                        producer.poll(Duration::from_millis(10));
                    }
                    Err((e, _)) => panic!("enqueueing a record to {topic} failed: {e}"),
                }
            }
        }
        producer
            .flush(Duration::from_secs(60))
            .expect("flushing the producer failed");
    }

    /// Reads `topic` from the beginning of every partition without joining a group, until at
    /// least `min_records` records have arrived and every partition has reached its end (for
    /// `read_committed`, the last stable offset), or until `timeout`. Returns what it read;
    /// callers assert on it, so a short read shows up as a clear assertion failure.
    pub fn read_topic(
        &self,
        topic: &str,
        isolation: Isolation,
        min_records: usize,
        timeout: Duration,
    ) -> Vec<ReadRecord> {
        let options = ReadOptions {
            isolation,
            min_records,
            max_records: usize::MAX,
            timeout,
        };
        read_from_beginning(&self.config, &self.group("reader"), topic, options)
            .unwrap_or_else(|e| panic!("reading {topic}: {e}"))
    }
}

/// A service (router, delivery service) running in-process on a thread of its own with its
/// own tokio runtime, the way the binary runs it: built first, then `run` until stopped.
/// Dropping it stops it too, so a test that fails half-way leaves nothing consuming.
pub struct RunningService<E> {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<(), E>>>,
}

impl<E: Send + 'static> RunningService<E> {
    /// Builds the service with `build` on the new thread's runtime, hands `built`'s view of it
    /// (metrics, registries) back once it is built, then runs it with `run`.
    pub fn start<S, T, F>(
        name: &str,
        worker_threads: usize,
        build: impl FnOnce() -> F + Send + 'static,
        built: impl FnOnce(&S) -> T + Send + 'static,
        run: impl FnOnce(S, Arc<AtomicBool>, tokio::runtime::Handle) -> Result<(), E> + Send + 'static,
    ) -> Result<(Self, T), E>
    where
        F: Future<Output = Result<S, E>>,
        T: Send + 'static,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let (built_tx, built_rx) = std::sync::mpsc::channel();
        let thread_stop = stop.clone();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(worker_threads)
                    .enable_all()
                    .build()
                    .expect("a runtime for the service");
                let service = match runtime.block_on(build()) {
                    Ok(service) => {
                        let _ = built_tx.send(Ok(built(&service)));
                        service
                    }
                    Err(error) => {
                        let _ = built_tx.send(Err(error));
                        return Ok(());
                    }
                };
                run(service, thread_stop, runtime.handle().clone())
            })
            .expect("spawning the service thread");
        let view = built_rx
            .recv()
            .expect("the service thread ended before it was built")?;
        Ok((
            Self {
                stop,
                thread: Some(thread),
            },
            view,
        ))
    }

    /// Asks the service to stop, waits until it has, and returns how it ended.
    pub fn stop(mut self) -> Result<(), E> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread
            .take()
            .map(|t| t.join().expect("the service thread panicked"))
            .unwrap_or(Ok(()))
    }
}

impl<E> Drop for RunningService<E> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Sends SIGTERM to a service process and waits up to `deadline` for it to exit; returns
/// its exit status, or `None` (after killing it) when it did not exit in time. How the
/// process tests check that services stop cleanly when asked.
pub fn terminate(
    child: &mut std::process::Child,
    deadline: Duration,
) -> Option<std::process::ExitStatus> {
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("running kill");
    assert!(sent.success(), "SIGTERM could not be sent");
    let until = std::time::Instant::now() + deadline;
    loop {
        if let Some(exit) = child.try_wait().expect("waiting for the process") {
            return Some(exit);
        }
        if std::time::Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
