//! The end-to-end rig the `e2e` and `chaos` benchmarks share: the real `herald router` and
//! `herald deliver` processes (this build's binary) on the real broker, events of the four
//! example types routed to webhook subscriptions, and a local keep-alive receiver that counts
//! what arrives, by `webhook-id`, and can be taken down and brought back on the same port.

#![allow(dead_code)] // Each benchmark uses the part of the rig it needs.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use herald_core::Subscription;
use herald_core::topics::TopicNames;
use herald_deliver::testkit::webhook_subscription;
use herald_kafka::testkit::TestKafka;
use herald_router::testkit::{self, GeneratedEvent};

/// Partitions of the events topic and of the channel and retry topics.
pub(crate) const PARTITIONS: i32 = 6;

/// The brokers the benchmarks use: `HERALD_TEST_BROKERS` (as `scripts/services env` prints),
/// else `HERALD_BROKERS`, else the local default.
pub(crate) fn brokers() -> String {
    std::env::var("HERALD_TEST_BROKERS")
        .or_else(|_| std::env::var("HERALD_BROKERS"))
        .unwrap_or_else(|_| "127.0.0.1:9092".to_owned())
}

/// A workload on a fresh topic prefix: the events topic, 20 webhook subscriptions (one per
/// event type and tenant, owned by 10 apps) and the receiver they point at.
pub(crate) struct Rig {
    pub(crate) kafka: TestKafka,
    pub(crate) names: TopicNames,
    pub(crate) events_topic: String,
    pub(crate) subs: Vec<Subscription>,
    pub(crate) sink: Sink,
    pub(crate) logs: PathBuf,
    /// Asks partitions' end offsets; made once and connected up front (a fresh client's first
    /// requests wait for metadata).
    watermarks: herald_kafka::rdkafka::consumer::BaseConsumer,
}

impl Rig {
    pub(crate) async fn new(name: &str) -> Self {
        let kafka = TestKafka::with_brokers(&brokers(), name);
        let names = TopicNames::with_prefix(kafka.prefix()).expect("a topic prefix");
        // The broker stamps each event as it appends it, so that the e2e benchmark can split
        // the router's share of the latency at the broker.
        let events_topic = kafka.topic("events.bench");
        kafka
            .admin()
            .ensure_topics(&[herald_kafka::TopicSpec::new(&events_topic, PARTITIONS)
                .config("message.timestamp.type", "LogAppendTime")])
            .await
            .expect("creating the events topic");
        testkit::create_subscriptions_topic(&kafka, &names).await;
        let sink = Sink::start().await;
        let subs: Vec<Subscription> = (0..20)
            .map(|j| {
                let mut sub = webhook_subscription(
                    &format!("sub-{j}"),
                    &format!("app-{}", j % 10),
                    &format!("{}/sub-{j}", sink.base()),
                );
                sub.event_types = vec![testkit::TYPES[j % 4].to_owned()];
                sub.tenant_scope = Some(vec![format!("m-{}", (j / 4) % 5)]);
                sub
            })
            .collect();
        testkit::put_subscriptions(&kafka, &names, &subs);
        let logs = herald_bench::out_dir().join("logs").join(kafka.prefix());
        std::fs::create_dir_all(&logs).expect("a log directory");
        let watermarks: herald_kafka::rdkafka::consumer::BaseConsumer = kafka
            .config()
            .client_config()
            .set("isolation.level", "read_committed")
            .create()
            .expect("a consumer");
        {
            use herald_kafka::rdkafka::consumer::Consumer;
            watermarks
                .fetch_metadata(Some(&events_topic), Duration::from_secs(10))
                .expect("the broker answers a metadata request");
        }
        Self {
            watermarks,
            kafka,
            names,
            events_topic,
            subs,
            sink,
            logs,
        }
    }

    /// The notification ids the events must produce (the router test kit's oracle), each
    /// mapped to the index of its event.
    pub(crate) fn expected(&self, events: &[GeneratedEvent]) -> HashMap<String, usize> {
        let index: HashMap<&str, usize> = events
            .iter()
            .enumerate()
            .map(|(i, e)| (e.id.as_str(), i))
            .collect();
        testkit::expected(&self.subs, events)
            .into_keys()
            .map(|(event, sub)| {
                let i = index[event.as_str()];
                (herald_core::notification_id(&event, &sub), i)
            })
            .collect()
    }

    /// Waits until every service has its partitions (each log shows an assignment, and a
    /// second passed for the group's last rebalance) and a warm-up event has gone through the
    /// whole pipeline, then forgets it: measurements start from a settled pipeline, not from
    /// group formation (whose rebalances hand in-flight records to the next owner).
    pub(crate) async fn settle(&self, services: &[&Service]) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !services.iter().all(|s| {
            std::fs::read_to_string(s.log()).is_ok_and(|log| log.contains("partitions assigned"))
        }) {
            assert!(
                Instant::now() < deadline,
                "the services did not get their partitions within 60 s (logs: {})",
                self.logs.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let warmup = [testkit::event(
            &format!("warmup-{}", self.kafka.prefix()),
            1,
        )];
        let failed = produce(self.kafka.config(), &self.events_topic, &warmup, None, None);
        assert_eq!(failed, 0, "the warm-up event was not acknowledged");
        while self.sink.unique() == 0 {
            assert!(
                Instant::now() < deadline,
                "the warm-up event never arrived (logs: {})",
                self.logs.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.sink.reset();
    }

    /// The router as a supervised process.
    pub(crate) fn router(&self, instance: usize) -> Service {
        let mut args = vec!["router".to_owned()];
        args.extend(self.common_args());
        args.extend(
            [
                "--topics",
                &self.events_topic,
                "--instance-id",
                &instance.to_string(),
            ]
            .map(str::to_owned),
        );
        Service::new(&format!("router-{instance}"), args, self.logs.clone())
    }

    /// A webhook delivery worker as a supervised process: a retry schedule of seconds to two
    /// minutes (so that a chaos run ends in minutes, not in the shipped schedule's day) and a
    /// breaker that reopens after 5 s.
    pub(crate) fn deliver(&self, instance: usize) -> Service {
        let mut args = vec!["deliver".to_owned()];
        args.extend(self.common_args());
        args.extend(
            [
                "--channel",
                "webhook",
                "--instance-id",
                &instance.to_string(),
                "--allow-network",
                "127.0.0.1/32",
                "--timeout-ms",
                "5000",
                "--retry-schedule-ms",
                "0,1000,2000,5000,10000,20000,30000,60000,120000",
                "--retry-tiers-ms",
                "0,1000,5000,20000",
                "--breaker-open-ms",
                "5000",
            ]
            .map(str::to_owned),
        );
        Service::new(&format!("deliver-{instance}"), args, self.logs.clone())
    }

    fn common_args(&self) -> Vec<String> {
        [
            "--brokers",
            &self.kafka.config().brokers,
            "--prefix",
            self.kafka.prefix(),
            "--partitions",
            &PARTITIONS.to_string(),
        ]
        .map(str::to_owned)
        .to_vec()
    }

    /// The last stable offset of each partition of `topic` (what a read_committed consumer can
    /// reach); `i64::MAX` where the broker does not answer.
    pub(crate) fn end_offsets(&self, topic: &str) -> Vec<i64> {
        use herald_kafka::rdkafka::consumer::Consumer;
        (0..PARTITIONS)
            .map(|p| {
                self.watermarks
                    .fetch_watermarks(topic, p, Duration::from_secs(5))
                    // Unknown counts as work left, so that an unanswered query never passes
                    // for a drained partition.
                    .map_or(i64::MAX, |(_, high)| high)
            })
            .collect()
    }

    /// A group's committed offsets on `topic`, per partition.
    pub(crate) fn committed(&self, group: &str, topic: &str) -> Vec<i64> {
        self.kafka
            .admin()
            .committed_offsets(group, topic, PARTITIONS)
            .map(|offsets| offsets.into_iter().map(|o| o.unwrap_or(0)).collect())
            .unwrap_or_default()
    }
}

/// The `count` events of run `run`, as the router test kit generates them (four types, five
/// tenants, point-to-point and broadcast events among them).
pub(crate) fn events(run: &str, count: usize) -> Vec<GeneratedEvent> {
    (0..count).map(|i| testkit::event(run, i)).collect()
}

/// A `herald` subcommand run as a child process, restarted by its supervisor when it exits.
pub(crate) struct Service {
    pub(crate) name: String,
    args: Vec<String>,
    logs: PathBuf,
    child: Option<Child>,
    /// Exits nobody asked for (the process died by itself).
    pub(crate) unexpected_exits: usize,
    /// Peak RSS (MiB) seen by [`Service::sample_rss`].
    pub(crate) peak_rss_mib: f64,
}

impl Service {
    fn new(name: &str, args: Vec<String>, logs: PathBuf) -> Self {
        Self {
            name: name.to_owned(),
            args,
            logs,
            child: None,
            unexpected_exits: 0,
            peak_rss_mib: 0.0,
        }
    }

    /// Where its stderr goes (appended across restarts).
    pub(crate) fn log(&self) -> PathBuf {
        self.logs.join(format!("{}.log", self.name))
    }

    pub(crate) fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .expect("a log file");
        let child = Command::new(env!("CARGO_BIN_EXE_herald"))
            .args(&self.args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("herald starts");
        self.child = Some(child);
    }

    /// The same service with more arguments.
    pub(crate) fn with_args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|a| (*a).to_owned()));
        self
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL, then reap.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then wait (SIGKILL after 60 s); true when it exited 0.
    pub(crate) fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Restarts the process if it exited by itself, as Kubernetes would; counts such exits.
    pub(crate) fn supervise(&mut self) {
        let exited = match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(Some(_))),
            None => false,
        };
        if exited {
            self.unexpected_exits += 1;
            eprintln!(
                "  {} exited by itself; restarting it (log: {})",
                self.name,
                self.log().display()
            );
            self.start();
        }
    }

    pub(crate) fn sample_rss(&mut self) {
        if let Some(pid) = self.pid() {
            let (rss, hwm) = herald_bench::rss_mib(pid);
            self.peak_rss_mib = self.peak_rss_mib.max(rss).max(hwm);
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What the receiver counted.
#[derive(Default)]
pub(crate) struct Tally {
    /// Requests per `webhook-id`.
    pub(crate) by_id: HashMap<String, u32>,
    /// Requests whose `webhook-id` is not the id of the (event, subscription) they carry:
    /// a redelivery under a new id would count here.
    pub(crate) foreign_ids: usize,
    /// When each id first arrived, in arrival order.
    pub(crate) first_arrivals: Vec<Instant>,
    /// End-to-end latencies (µs) of first arrivals whose send time is known.
    pub(crate) latencies_us: Vec<u64>,
}

struct SinkState {
    tally: Mutex<Tally>,
    requests: AtomicUsize,
    /// Notification id → event index, and each event's send time (µs since `epoch`), for
    /// latencies; empty when not measured.
    index: Mutex<Arc<HashMap<String, usize>>>,
    sent_us: Mutex<Arc<Vec<AtomicU64>>>,
    epoch: Instant,
    /// The wall clock at `epoch`, in ms since the Unix epoch, to set send times against the
    /// timestamps Herald writes.
    epoch_wall_ms: f64,
}

#[derive(serde::Deserialize)]
struct Envelope {
    id: String,
}

async fn receive(
    State(state): State<Arc<SinkState>>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: String,
) -> StatusCode {
    let now = Instant::now();
    state.requests.fetch_add(1, Ordering::Relaxed);
    let webhook_id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let event_id = serde_json::from_str::<Envelope>(&body)
        .map(|e| e.id)
        .unwrap_or_default();
    let own_id = herald_core::notification_id(&event_id, &path);
    let latency = {
        let index = state.index.lock().unwrap().clone();
        let sent = state.sent_us.lock().unwrap().clone();
        index
            .get(&webhook_id)
            .and_then(|i| sent.get(*i))
            .map(|at| at.load(Ordering::Relaxed))
            .filter(|at| *at > 0)
            .map(|at| (now - state.epoch).as_micros() as u64 - at)
    };
    let mut tally = state.tally.lock().unwrap();
    if own_id != webhook_id {
        tally.foreign_ids += 1;
    }
    let count = tally.by_id.entry(webhook_id).or_insert(0);
    *count += 1;
    if *count == 1 {
        tally.first_arrivals.push(now);
        if let Some(latency) = latency {
            tally.latencies_us.push(latency);
        }
    }
    StatusCode::NO_CONTENT
}

/// A local keep-alive webhook receiver on 127.0.0.1 that can go down and come back on the
/// same port.
pub(crate) struct Sink {
    address: SocketAddr,
    state: Arc<SinkState>,
    serving: Option<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    )>,
}

impl Sink {
    pub(crate) async fn start() -> Self {
        let state = Arc::new(SinkState {
            tally: Mutex::default(),
            requests: AtomicUsize::new(0),
            index: Mutex::default(),
            sent_us: Mutex::default(),
            epoch: Instant::now(),
            epoch_wall_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64() * 1000.0),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the receiver");
        let address = listener.local_addr().expect("the receiver's address");
        let mut sink = Self {
            address,
            state,
            serving: None,
        };
        sink.serve(listener);
        sink
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let app = axum::Router::new()
            .route("/{*path}", axum::routing::post(receive))
            .with_state(self.state.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        self.serving = Some((stop, task));
    }

    pub(crate) fn base(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Stops listening and closes its connections: senders get "connection refused".
    pub(crate) async fn down(&mut self) {
        if let Some((stop, task)) = self.serving.take() {
            let _ = stop.send(());
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }

    /// Listens again on the same port.
    pub(crate) async fn up(&mut self) {
        let listener = loop {
            match tokio::net::TcpListener::bind(self.address).await {
                Ok(listener) => break listener,
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        self.serve(listener);
    }

    /// Measures latencies from now on: `index` maps notification ids to event indexes, whose
    /// send times the producer stores with [`Sink::mark_sent`].
    pub(crate) fn measure_latency(&self, index: HashMap<String, usize>, events: usize) {
        *self.state.sent_us.lock().unwrap() =
            Arc::new((0..events).map(|_| AtomicU64::new(0)).collect());
        *self.state.index.lock().unwrap() = Arc::new(index);
    }

    /// A handle that records when event `i` was sent.
    pub(crate) fn send_clock(&self) -> SendClock {
        SendClock {
            sent_us: self.state.sent_us.lock().unwrap().clone(),
            epoch: self.state.epoch,
        }
    }

    /// When event `i` was sent, in ms since the Unix epoch (wall clock), if it was.
    pub(crate) fn sent_wall_ms(&self, i: usize) -> Option<f64> {
        let sent = self.state.sent_us.lock().unwrap().clone();
        sent.get(i)
            .map(|at| at.load(Ordering::Relaxed))
            .filter(|at| *at > 0)
            .map(|at| self.state.epoch_wall_ms + at as f64 / 1000.0)
    }

    /// Distinct `webhook-id`s received.
    pub(crate) fn unique(&self) -> usize {
        self.state.tally.lock().unwrap().by_id.len()
    }

    pub(crate) fn requests(&self) -> usize {
        self.state.requests.load(Ordering::Relaxed)
    }

    /// Runs `f` on the tally.
    pub(crate) fn with_tally<T>(&self, f: impl FnOnce(&Tally) -> T) -> T {
        f(&self.state.tally.lock().unwrap())
    }

    /// Forgets everything counted (between runs on one receiver).
    pub(crate) fn reset(&self) {
        *self.state.tally.lock().unwrap() = Tally::default();
        self.state.requests.store(0, Ordering::Relaxed);
    }

    /// The first arrival of a new id at or after `t`, if any.
    pub(crate) fn first_new_after(&self, t: Instant) -> Option<Instant> {
        self.with_tally(|tally| tally.first_arrivals.iter().copied().find(|a| *a >= t))
    }
}

/// Records send times for latency measurement.
#[derive(Clone)]
pub(crate) struct SendClock {
    sent_us: Arc<Vec<AtomicU64>>,
    epoch: Instant,
}

impl SendClock {
    pub(crate) fn mark_sent(&self, i: usize) {
        if let Some(slot) = self.sent_us.get(i) {
            slot.store(
                (Instant::now() - self.epoch).as_micros().max(1) as u64,
                Ordering::Relaxed,
            );
        }
    }
}

/// What a run delivered against what it should have.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub(crate) struct Outcome {
    pub(crate) expected: usize,
    pub(crate) delivered: usize,
    pub(crate) lost: usize,
    pub(crate) unexpected: usize,
    pub(crate) duplicate_deliveries: usize,
    pub(crate) duplicates_with_another_id: usize,
    pub(crate) duplicate_notification_records: usize,
    pub(crate) notification_records: usize,
}

/// Compares the receiver's tally with the expected ids, and counts the channel topic's
/// Notification records (read_committed) per id.
pub(crate) fn outcome(rig: &Rig, expected: &HashMap<String, usize>) -> Outcome {
    let (delivered, lost, unexpected, duplicate_deliveries, foreign) = rig.sink.with_tally(|t| {
        let lost = expected
            .keys()
            .filter(|id| !t.by_id.contains_key(*id))
            .count();
        let unexpected = t
            .by_id
            .keys()
            .filter(|id| !expected.contains_key(*id))
            .count();
        let duplicates: usize = t.by_id.values().map(|c| *c as usize - 1).sum();
        (t.by_id.len(), lost, unexpected, duplicates, t.foreign_ids)
    });
    let channel = herald_core::topics::ChannelName::parse("webhook").expect("a channel");
    let records = rig.kafka.read_topic(
        &rig.names.notify(&channel),
        herald_kafka::testkit::Isolation::ReadCommitted,
        expected.len(),
        Duration::from_secs(120),
    );
    let codec = herald_contract::RecordCodec::notification();
    let mut per_id: BTreeMap<String, usize> = BTreeMap::new();
    for record in &records {
        let n: herald_core::Notification = codec
            .decode(record.value.as_deref().unwrap_or_default())
            .expect("a Notification record");
        *per_id.entry(n.notification_id).or_default() += 1;
    }
    Outcome {
        expected: expected.len(),
        delivered,
        lost,
        unexpected,
        duplicate_deliveries,
        duplicates_with_another_id: foreign,
        duplicate_notification_records: per_id.values().map(|c| c - 1).sum(),
        notification_records: records.len(),
    }
}

/// Counts the broker's negative delivery reports.
struct Reports(Arc<AtomicUsize>);

impl herald_kafka::rdkafka::ClientContext for Reports {}

impl herald_kafka::rdkafka::producer::ProducerContext for Reports {
    type DeliveryOpaque = ();

    fn delivery(
        &self,
        result: &herald_kafka::rdkafka::message::DeliveryResult<'_>,
        _: Self::DeliveryOpaque,
    ) {
        if result.is_err() {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Produces events to `topic` at `rate` per second (None: as fast as the producer goes),
/// idempotently, with their CloudEvents headers; `clock` records each send time. Returns how
/// many the broker did not acknowledge (0 unless something went wrong).
pub(crate) fn produce(
    config: &herald_kafka::KafkaConfig,
    topic: &str,
    events: &[GeneratedEvent],
    rate: Option<f64>,
    clock: Option<&SendClock>,
) -> usize {
    use herald_kafka::rdkafka::message::{Header, OwnedHeaders};
    use herald_kafka::rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let failed = Arc::new(AtomicUsize::new(0));
    let producer: BaseProducer<Reports> = config
        .client_config()
        .set("linger.ms", if rate.is_some() { "0" } else { "5" })
        .set("enable.idempotence", "true")
        .create_with_context(Reports(failed.clone()))
        .expect("a producer");
    if rate.is_some() {
        // A fresh idempotent producer connects, fetches metadata and gets its producer id
        // before it sends anything: measured, its first ~300 ms of records waited for that,
        // which made 1.5 % of every latency run's records 300 ms late. Start the clock after.
        use herald_kafka::rdkafka::producer::Producer as _;
        let _ = producer
            .client()
            .fetch_metadata(Some(topic), Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(1000));
    }
    let started = Instant::now();
    for (i, event) in events.iter().enumerate() {
        if let Some(rate) = rate {
            let due = started + Duration::from_secs_f64(i as f64 / rate);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                producer.poll(Duration::ZERO);
                std::thread::sleep(wait);
            }
        }
        let headers = event.headers.iter().fold(OwnedHeaders::new(), |h, (k, v)| {
            h.insert(Header {
                key: k,
                value: Some(v.as_bytes()),
            })
        });
        let mut record = BaseRecord::<[u8], [u8], ()>::to(topic)
            .key(event.key.as_bytes())
            .payload(&event.value)
            .headers(headers);
        if let Some(clock) = clock {
            clock.mark_sent(i);
        }
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(5));
                }
            }
        }
        producer.poll(Duration::ZERO);
    }
    if producer.flush(Duration::from_secs(600)).is_err() {
        return producer.in_flight_count().max(1) as usize;
    }
    failed.load(Ordering::Relaxed)
}
