//! Router throughput against a raw transactional passthrough, in one process run on the same
//! real broker, so that the ratio holds however noisy the machine is.
//!
//! Both read the same pre-produced events topic through the same transactional
//! read-process-write loop (`herald_kafka::Pipeline`, same batch limits, same consumer
//! protocol); the passthrough copies each record to one output topic, the router decodes,
//! matches 1,000 tenant-scoped subscriptions with CEL filters, transforms and writes
//! Notifications. Each rate is measured in-process from the first committed transaction to
//! the last (start-up and group join excluded). The routing step alone (the router's
//! processor on the first 100,000 events, no Kafka, 1 and 2 threads) is measured first: it
//! is the router's CPU ceiling, and shows how much of the gap is the broker's share of the
//! cores.
//!
//! Run: `scripts/services up && cargo bench -p herald-router --bench router`
//! (`HERALD_BENCH_EVENTS`, default 200000; `HERALD_BROKERS`, default 127.0.0.1:9092).
//! Prints a table and writes `target/bench/router.{json,md}` and `router-rates.svg`.

/// The allocator the herald binary uses, so the figures are the product's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use herald_bench::{Report, thousands};
use herald_core::topics::TopicNames;
use herald_kafka::testkit::{ReadRecord, TestKafka};
use herald_kafka::{BatchOutcome, BatchProcessor, OutRecord, Pipeline, PipelineConfig};
use herald_router::RouterConfig;
use herald_router::testkit::{self, RunningRouter};

const SUBSCRIPTIONS: usize = 1_000;
const TENANTS: usize = 250;
const PARTITIONS: i32 = 6;

/// Copies every record to one topic: the cheapest possible exactly-once stage.
struct Passthrough {
    output: String,
    /// Transactions committed, input records they covered, and their summed duration.
    stats: Arc<std::sync::Mutex<(usize, usize, Duration)>>,
}

impl BatchProcessor for Passthrough {
    fn process(&mut self, batch: &[ReadRecord]) -> BatchOutcome {
        let outputs = batch
            .iter()
            .map(|r| OutRecord {
                topic: self.output.clone(),
                key: r.key.clone(),
                value: r.value.clone(),
                headers: r
                    .headers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone().unwrap_or_default()))
                    .collect(),
            })
            .collect();
        BatchOutcome {
            outputs,
            processed: batch.len(),
            pause: None,
        }
    }

    fn committed(&mut self, stats: &herald_kafka::CommitStats) {
        let mut total = self.stats.lock().expect("stats");
        total.0 += 1;
        total.1 += stats.records;
        total.2 += stats.elapsed;
    }
}

/// A measured run: events committed between the first and the last observation.
struct Rate {
    events: usize,
    seconds: f64,
}

impl Rate {
    fn per_second(&self) -> f64 {
        self.events as f64 / self.seconds
    }
}

/// Polls `committed` (input events whose transaction committed) until it reaches `total`;
/// the rate counts from the first observation with something committed, so start-up and the
/// group join are excluded.
fn measure(what: &str, committed: impl Fn() -> usize, total: usize) -> Rate {
    let deadline = Instant::now() + Duration::from_secs(600);
    let (start, base) = loop {
        let done = committed();
        if done > 0 {
            break (Instant::now(), done);
        }
        assert!(Instant::now() < deadline, "{what} committed nothing");
        std::thread::sleep(Duration::from_millis(5));
    };
    loop {
        let done = committed();
        if done >= total {
            return Rate {
                events: done - base,
                seconds: start.elapsed().as_secs_f64(),
            };
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {done} of {total} events in 10 minutes"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn main() {
    let brokers = std::env::var("HERALD_BROKERS")
        .or_else(|_| std::env::var("HERALD_TEST_BROKERS"))
        .unwrap_or_else(|_| "127.0.0.1:9092".to_owned());
    let total: usize = std::env::var("HERALD_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let kafka = TestKafka::with_brokers(&brokers, "bench-router");
    let names = TopicNames::with_prefix(kafka.prefix()).expect("prefix");
    let topic = runtime.block_on(kafka.create_topic("events.bench", PARTITIONS));
    let passthrough_out = runtime.block_on(kafka.create_topic("passthrough.out", PARTITIONS));
    runtime.block_on(testkit::create_subscriptions_topic(&kafka, &names));
    let subs = testkit::tenant_scoped_subscriptions(SUBSCRIPTIONS, TENANTS);
    testkit::put_subscriptions(&kafka, &names, &subs);
    eprintln!("producing {total} events to {topic}");
    let produced_at = Instant::now();
    let events: Vec<_> = (0..total)
        .map(|i| testkit::event_among_tenants("bench", i, TENANTS))
        .collect();
    testkit::produce_events(&kafka, &topic, &events);
    let sample = testkit::expected(&subs, &events[..events.len().min(10_000)]);
    let fan_out = sample.values().sum::<usize>() as f64 / events.len().min(10_000) as f64;
    let mean_bytes = events.iter().map(|e| e.value.len()).sum::<usize>() as f64 / total as f64;
    eprintln!("produced in {:.1} s", produced_at.elapsed().as_secs_f64());
    // The routing step alone first, while the broker idles: the router's CPU ceiling.
    let step_events = &events[..events.len().min(100_000)];
    let (step_1, _) = testkit::routing_step_rate(&subs, step_events, 1, 3);
    let (step_2, _) = testkit::routing_step_rate(&subs, step_events, 2, 3);
    eprintln!("routing step alone: {step_1:.0} events/s on 1 thread, {step_2:.0} on 2");
    drop(events);

    // 1. The passthrough.
    let stop = Arc::new(AtomicBool::new(false));
    let group = kafka.group("passthrough");
    let mut config =
        PipelineConfig::new(&group, &kafka.group("passthrough-txn"), vec![topic.clone()]);
    config.group_protocol = "classic".to_owned();
    let thread_stop = stop.clone();
    let kafka_config = kafka.config().clone();
    let output = passthrough_out.clone();
    let txn_stats = Arc::new(std::sync::Mutex::new((0, 0, Duration::ZERO)));
    let stats = txn_stats.clone();
    let passthrough = std::thread::spawn(move || {
        let mut pipeline = Pipeline::new(&kafka_config, config).expect("passthrough pipeline");
        pipeline
            .run(&mut Passthrough { output, stats }, &thread_stop)
            .expect("passthrough runs");
    });
    let raw = measure("passthrough", || txn_stats.lock().expect("stats").1, total);
    stop.store(true, Ordering::SeqCst);
    passthrough.join().expect("passthrough thread");
    let (txns, txn_records, txn_time) = *txn_stats.lock().expect("stats");
    eprintln!(
        "passthrough: {txns} transactions, {:.0} records each, {:.1} ms each begin→commit",
        txn_records as f64 / txns.max(1) as f64,
        txn_time.as_secs_f64() * 1000.0 / txns.max(1) as f64
    );

    // 2. The router, on the same input.
    let mut config = RouterConfig::new(&brokers);
    config.topic_prefix = kafka.prefix().to_owned();
    config.source_topics = vec![topic.clone()];
    config.notify_partitions = PARTITIONS;
    let router = RunningRouter::start(config).expect("router starts");
    let routed = measure(
        "router",
        || router.metrics().events_committed.get() as usize,
        total,
    );
    let notifications = router.counter_total("herald_router_notifications_total");
    router.stop().expect("router stops");

    let ratio = routed.per_second() / raw.per_second();
    let mut report = Report::new(
        "router",
        &format!(
            "Router vs transactional passthrough: {} events ({mean_bytes:.0} B single-object Avro, {PARTITIONS} partitions), {} subscriptions over {TENANTS} tenants, CEL filters on all, one process run",
            thousands(total as i64),
            thousands(SUBSCRIPTIONS as i64)
        ),
    );
    report.row(
        "transactional passthrough (events/s)",
        format!(
            "{} ({:.2} s)",
            thousands(raw.per_second() as i64),
            raw.seconds
        ),
        "",
    );
    report.row(
        "router (events/s)",
        format!(
            "{} ({:.2} s)",
            thousands(routed.per_second() as i64),
            routed.seconds
        ),
        ">= 50,000",
    );
    report.row(
        "ratio router / passthrough",
        format!("{ratio:.2}"),
        ">= 0.70",
    );
    report.row(
        "routing step alone, no Kafka: 1 thread / 2 threads (events/s)",
        format!(
            "{} / {} ({:.2} / {:.2} us per event per thread)",
            thousands(step_1 as i64),
            thousands(step_2 as i64),
            1e6 / step_1,
            2e6 / step_2
        ),
        "",
    );
    report.row(
        "notifications written (per event)",
        format!(
            "{} ({:.2}; oracle on the first 10,000: {fan_out:.2})",
            thousands(notifications as i64),
            notifications / total as f64
        ),
        "",
    );
    report.bars(
        "rates",
        &format!("Events/s in one run (ratio {ratio:.2})"),
        "events/s",
        &[
            ("transactional passthrough".to_owned(), raw.per_second()),
            ("router".to_owned(), routed.per_second()),
        ],
    );
    report.field("events", serde_json::json!(total));
    report.field("subscriptions", serde_json::json!(SUBSCRIPTIONS));
    report.field("tenants", serde_json::json!(TENANTS));
    report.field("partitions", serde_json::json!(PARTITIONS));
    report.field(
        "passthrough_events_per_second",
        serde_json::json!(raw.per_second()),
    );
    report.field(
        "router_events_per_second",
        serde_json::json!(routed.per_second()),
    );
    report.field("ratio", serde_json::json!(ratio));
    report.field(
        "routing_step_events_per_second_1_thread",
        serde_json::json!(step_1),
    );
    report.field(
        "routing_step_events_per_second_2_threads",
        serde_json::json!(step_2),
    );
    report.field("notifications", serde_json::json!(notifications));
    report.field("fan_out_per_event", serde_json::json!(fan_out));
    report.finish();
}
