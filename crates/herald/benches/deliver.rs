//! The delivery service measured as platform teams run it: the real `herald deliver` process
//! (release build) against the real broker and a local keep-alive HTTP receiver.
//!
//! 1. **Throughput and memory**: a backlog of `HERALD_BENCH_NOTIFICATIONS` (default
//!    1,000,000) notifications to 100 endpoints is produced first; the service then drains it.
//!    Prints deliveries/s (first to last delivery), the attempt latency p50/p99 of a sample of
//!    attempt records, and the service's peak RSS (VmHWM) over the run.
//! 2. **Head-of-line**: notifications are produced at a steady rate to 100 endpoints, once all
//!    healthy and once with one endpoint that never answers; prints the healthy endpoints'
//!    end-to-end p99 (produce → received) in both runs and their ratio, in one process run.
//!
//! Run: `scripts/bench deliver`, or `scripts/services up && cargo bench -p herald --bench
//! deliver`. Prints a table and writes `target/bench/deliver.{json,md}` and `deliver-hung.svg`.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use herald_bench::{Report, percentile, rss_mib, thousands};
use herald_contract::RecordCodec;
use herald_contract::records::encode_notification;
use herald_core::Subscription;
use herald_core::attempt::DeliveryAttempt;
use herald_core::topics::{ChannelName, TopicNames};
use herald_deliver::testkit::{notification, put_subscriptions, test_config, webhook_subscription};
use herald_kafka::rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use herald_kafka::reader::{Isolation, ReadOptions, read_from_beginning};
use herald_kafka::testkit::TestKafka;

const ENDPOINTS: usize = 100;
const PARTITIONS: i32 = 6;

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// What the receiver saw.
#[derive(Default)]
struct Seen {
    delivered: AtomicUsize,
    first_us: Mutex<Option<u64>>,
    last_us: Mutex<u64>,
    /// End-to-end latencies (µs) of healthy deliveries whose payload carried `sent_us`.
    latencies_us: Mutex<Vec<u64>>,
}

async fn receive(
    State(seen): State<Arc<Seen>>,
    Path(path): Path<String>,
    body: String,
) -> StatusCode {
    if path == "hung" {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    let now = now_us();
    seen.delivered.fetch_add(1, Ordering::Relaxed);
    seen.first_us.lock().unwrap().get_or_insert(now);
    *seen.last_us.lock().unwrap() = now;
    if let Some(sent) = body
        .split("\"sent_us\":")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|digits| digits.parse::<u64>().ok())
        .filter(|sent| *sent > 0)
    {
        seen.latencies_us
            .lock()
            .unwrap()
            .push(now.saturating_sub(sent));
    }
    StatusCode::NO_CONTENT
}

async fn start_receiver() -> (String, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let app = axum::Router::new()
        .route("/{*path}", axum::routing::post(receive))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, seen)
}

fn start_service(kafka: &TestKafka) -> Child {
    Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["deliver", "--brokers", &kafka.config().brokers])
        .args(["--prefix", kafka.prefix(), "--channel", "webhook"])
        .args(["--partitions", &PARTITIONS.to_string()])
        .args(["--allow-network", "127.0.0.1/32", "--timeout-ms", "5000"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("herald deliver starts")
}

fn stop_service(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

async fn setup(test: &str) -> (TestKafka, TopicNames, Vec<Subscription>, String, Arc<Seen>) {
    let brokers = std::env::var("HERALD_TEST_BROKERS")
        .or_else(|_| std::env::var("HERALD_BROKERS"))
        .unwrap_or_else(|_| "127.0.0.1:9092".to_owned());
    let kafka = TestKafka::with_brokers(&brokers, test);
    let names = TopicNames::with_prefix(kafka.prefix()).unwrap();
    let mut config = test_config(&kafka, &[1000]);
    config.partitions = PARTITIONS;
    config.retry_tiers_ms = herald_core::retry::DEFAULT_SCHEDULE
        .iter()
        .map(|d| d.as_millis() as u64)
        .collect();
    herald_deliver::ensure_topics(&config).await.unwrap();
    let (base, seen) = start_receiver().await;
    let subs: Vec<Subscription> = (0..ENDPOINTS)
        .map(|i| webhook_subscription(&format!("sub-{i}"), "app-1", &format!("{base}/ep-{i}")))
        .collect();
    put_subscriptions(&kafka, &names, &subs);
    (kafka, names, subs, base, seen)
}

fn send(producer: &BaseProducer, topic: &str, key: &[u8], value: &[u8]) {
    let mut record = BaseRecord::<[u8], [u8]>::to(topic).key(key).payload(value);
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((_, back)) => {
                record = back;
                producer.poll(Duration::from_millis(5));
            }
        }
    }
}

/// Phase 1: drain a backlog. Returns (deliveries/s, attempt p50 ms, attempt p99 ms, peak RSS MiB).
async fn throughput(total: usize) -> (f64, u64, u64, f64) {
    let (kafka, names, subs, _base, seen) = setup("bench-deliver-backlog").await;
    let codec = RecordCodec::notification();
    let topic = names.notify(&ChannelName::parse("webhook").unwrap());
    let producer = kafka.producer();
    let started = Instant::now();
    for i in 0..total {
        let n = notification(&subs[i % ENDPOINTS], "bl", i);
        let value = encode_notification(&codec, &n).unwrap();
        send(&producer, &topic, n.record_key().as_bytes(), &value);
    }
    producer.flush(Duration::from_secs(120)).unwrap();
    eprintln!("backlog of {total} produced in {:?}", started.elapsed());

    let child = start_service(&kafka);
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(1800);
    let mut peak_rss: f64 = 0.0;
    let mut last_report = Instant::now();
    while seen.delivered.load(Ordering::Relaxed) < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (rss, hwm) = rss_mib(pid);
        peak_rss = peak_rss.max(rss).max(hwm);
        if last_report.elapsed() > Duration::from_secs(10) {
            eprintln!(
                "  {} delivered, RSS {rss:.0} MiB",
                seen.delivered.load(Ordering::Relaxed)
            );
            last_report = Instant::now();
        }
    }
    let (_, hwm) = rss_mib(pid);
    peak_rss = peak_rss.max(hwm);
    stop_service(child);
    let delivered = seen.delivered.load(Ordering::Relaxed);
    assert!(
        delivered >= total,
        "only {delivered} of {total} delivered in time"
    );
    let first = seen.first_us.lock().unwrap().unwrap_or(0);
    let last = *seen.last_us.lock().unwrap();
    let rate = total as f64 / ((last - first) as f64 / 1e6);

    let attempts_codec = RecordCodec::builtin("dev.herald.DeliveryAttempt");
    let sample = read_from_beginning(
        kafka.config(),
        &kafka.group("attempts-sample"),
        &names.attempts(),
        ReadOptions {
            isolation: Isolation::ReadCommitted,
            min_records: 0,
            max_records: 50_000,
            timeout: Duration::from_secs(60),
        },
    )
    .unwrap();
    let mut latencies: Vec<u64> = sample
        .iter()
        .filter_map(|r| {
            attempts_codec
                .decode::<DeliveryAttempt>(r.value.as_deref()?)
                .ok()
        })
        .map(|a| a.latency_ms as u64)
        .collect();
    latencies.sort_unstable();
    (
        rate,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        peak_rss,
    )
}

/// Phase 2: a steady rate, with or without a hung endpoint. Returns the healthy endpoints'
/// end-to-end p50 and p99 in ms.
async fn steady(hung: bool, rate: usize, seconds: u64) -> (f64, f64) {
    let (kafka, names, mut subs, base, seen) = setup(if hung {
        "bench-deliver-hung"
    } else {
        "bench-deliver-healthy"
    })
    .await;
    if hung {
        subs[0] = webhook_subscription("sub-hung", "app-1", &format!("{base}/hung"));
        put_subscriptions(&kafka, &names, &subs[..1]);
    }
    let child = start_service(&kafka);
    // Let the service join its group and load its subscriptions.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let codec = RecordCodec::notification();
    let topic = names.notify(&ChannelName::parse("webhook").unwrap());
    let total = rate * seconds as usize;
    let producer_kafka = kafka.config().clone();
    let subs_for_thread = subs.clone();
    let produced = std::thread::spawn(move || {
        let producer: BaseProducer = producer_kafka
            .client_config()
            .set("linger.ms", "1")
            .create()
            .unwrap();
        let started = Instant::now();
        for i in 0..total {
            let due = started + Duration::from_secs_f64(i as f64 / rate as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let sub = &subs_for_thread[i % ENDPOINTS];
            let mut n = notification(sub, "st", i);
            n.payload = format!(r#"{{"type":"order.paid","sent_us":{},"i":{i}}}"#, now_us());
            let value = encode_notification(&codec, &n).unwrap();
            send(&producer, &topic, n.record_key().as_bytes(), &value);
            producer.poll(Duration::ZERO);
        }
        producer.flush(Duration::from_secs(30)).unwrap();
    });
    produced.join().unwrap();
    let healthy_total = if hung {
        total - total / ENDPOINTS
    } else {
        total
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.latencies_us.lock().unwrap().len() < healthy_total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop_service(child);
    let mut latencies = seen.latencies_us.lock().unwrap().clone();
    assert!(
        latencies.len() >= healthy_total,
        "only {} of {healthy_total} healthy notifications arrived",
        latencies.len()
    );
    latencies.sort_unstable();
    (
        percentile(&latencies, 0.5) as f64 / 1000.0,
        percentile(&latencies, 0.99) as f64 / 1000.0,
    )
}

fn main() {
    let total: usize = std::env::var("HERALD_BENCH_NOTIFICATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let rate: usize = std::env::var("HERALD_BENCH_RATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (healthy_p50, healthy_p99) = steady(false, rate, 20).await;
        let (hung_p50, hung_p99) = steady(true, rate, 20).await;
        let (per_sec, p50, p99, rss) = throughput(total).await;
        let ratio = hung_p99 / healthy_p99;
        let mut report = Report::new(
            "deliver",
            &format!("herald deliver (release), real broker, local keep-alive receiver, {ENDPOINTS} endpoints"),
        );
        report.row("backlog drained", format!("{} notifications", thousands(total as i64)), "");
        report.row("deliveries/s", thousands(per_sec as i64), ">= 10,000");
        report.row("attempt latency p50 / p99 (ms, 50,000-attempt sample)", format!("{p50} / {p99}"), "");
        report.row("peak RSS of herald deliver (MiB)", format!("{rss:.0}"), "<= 200");
        report.row(
            format!("healthy end-to-end p50 / p99 at {rate}/s, all healthy (ms)"),
            format!("{healthy_p50:.1} / {healthy_p99:.1}"),
            "",
        );
        report.row(
            format!("healthy end-to-end p50 / p99 at {rate}/s, one endpoint hung (ms)"),
            format!("{hung_p50:.1} / {hung_p99:.1}"),
            "",
        );
        report.row("p99 ratio hung / healthy", format!("{ratio:.2}"), "< 2");
        report.bars(
            "hung",
            &format!("Healthy endpoints' p99 at {rate}/s (ratio {ratio:.2})"),
            "ms",
            &[
                ("100 healthy".to_owned(), healthy_p99),
                ("99 healthy + 1 hung".to_owned(), hung_p99),
            ],
        );
        report.field("notifications", serde_json::json!(total));
        report.field("deliveries_per_second", serde_json::json!(per_sec));
        report.field("attempt_latency_ms", serde_json::json!({"p50": p50, "p99": p99}));
        report.field("peak_rss_mib", serde_json::json!(rss));
        report.field("steady_rate_per_second", serde_json::json!(rate));
        report.field("healthy_only", serde_json::json!({"p50_ms": healthy_p50, "p99_ms": healthy_p99}));
        report.field("with_hung_endpoint", serde_json::json!({"p50_ms": hung_p50, "p99_ms": hung_p99}));
        report.field("p99_ratio", serde_json::json!(ratio));
        report.finish();
    });
}
