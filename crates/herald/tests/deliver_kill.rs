//! The real `herald deliver` process killed with SIGKILL several times mid-run and restarted:
//! every notification still reaches its receiver, and a notification received more than once
//! always carries the same `webhook-id` (at-least-once towards receivers, with a stable id).

use std::collections::{BTreeMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use herald_core::topics::TopicNames;
use herald_deliver::testkit::{
    Behaviour, Receiver, notification, produce_notifications, put_subscriptions, test_config,
    webhook_subscription,
};
use herald_kafka::testkit::TestKafka;

const NOTIFICATIONS: usize = 3_000;
const ENDPOINTS: usize = 20;
const KILLS: usize = 3;
/// Where the last instance serves its metrics (fixed: the test reads them from outside).
const METRICS_PORT: u16 = 19_464;

fn start_deliver(kafka: &TestKafka, log: &std::path::Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("the service's log file");
    Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["deliver", "--brokers", &kafka.config().brokers])
        .args(["--prefix", kafka.prefix(), "--channel", "webhook"])
        .args(["--instance-id", "0", "--partitions", "3"])
        .args([
            "--retry-schedule-ms",
            "200,200",
            "--retry-tiers-ms",
            "0,1000",
        ])
        .args(["--allow-network", "127.0.0.1/32", "--timeout-ms", "2000"])
        // Every fifth endpoint fails each first attempt; the breaker would (rightly) open on
        // it and exhaust the short schedule. This test is about kills, not breakers.
        .args(["--breaker-failures", "1000000"])
        .args(["--metrics-addr", &format!("127.0.0.1:{METRICS_PORT}")])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("herald deliver starts")
}

fn delivered_ids(receiver: &Receiver) -> HashSet<String> {
    receiver
        .received()
        .into_iter()
        .filter(|r| r.status == 200)
        .map(|r| r.webhook_id)
        .collect()
}

async fn wait_for_delivered(receiver: &Receiver, target: usize, what: &str) -> usize {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let done = delivered_ids(receiver).len();
        if done >= target {
            return done;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {done} of {target} delivered in time"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliver_killed_with_sigkill_mid_run_delivers_everything_with_stable_ids() {
    let kafka = TestKafka::new("deliver-sigkill");
    let names = TopicNames::with_prefix(kafka.prefix()).expect("prefix");
    let mut config = test_config(&kafka, &[200, 200]);
    config.retry_tiers_ms = vec![0, 1000];
    herald_deliver::ensure_topics(&config)
        .await
        .expect("topics");
    let receiver = Receiver::start().await;
    let subs: Vec<_> = (0..ENDPOINTS)
        .map(|i| {
            let path = format!("ep-{i}");
            // Every fifth endpoint fails each notification once: retries cross the kills too.
            if i % 5 == 0 {
                receiver.set(
                    &path,
                    Behaviour::FailFirst {
                        failures: 1,
                        status: 503,
                    },
                );
            }
            webhook_subscription(&format!("sub-{i}"), "app-1", &receiver.url(&path))
        })
        .collect();
    put_subscriptions(&kafka, &names, &subs);
    let ns: Vec<_> = (0..NOTIFICATIONS)
        .map(|i| notification(&subs[i % ENDPOINTS], "kill", i))
        .collect();
    produce_notifications(&kafka, &names, &ns);

    let log = std::env::temp_dir().join(format!("{}-deliver.log", kafka.prefix()));
    let started = Instant::now();
    let mut service = start_deliver(&kafka, &log);
    for kill in 1..=KILLS {
        let target = NOTIFICATIONS * kill / (KILLS + 1);
        let done = wait_for_delivered(&receiver, target, "before a kill").await;
        assert!(
            done < NOTIFICATIONS,
            "all delivered before kill {kill}; the test would prove nothing"
        );
        service.kill().expect("SIGKILL");
        service.wait().expect("reaping the killed service");
        eprintln!(
            "kill {kill}: SIGKILL with {done} of {NOTIFICATIONS} delivered, at {:?}",
            started.elapsed()
        );
        service = start_deliver(&kafka, &log);
    }
    wait_for_delivered(&receiver, NOTIFICATIONS, "after the last restart").await;
    eprintln!(
        "all {NOTIFICATIONS} delivered after {:?}",
        started.elapsed()
    );
    // The last instance's own metrics: it made attempts, and says so on /metrics.
    let metrics = http_get(&format!("127.0.0.1:{METRICS_PORT}"), "/metrics").await;
    assert!(
        metrics
            .contains("herald_deliver_attempts_total{channel=\"webhook\",outcome=\"succeeded\"}"),
        "{metrics}"
    );
    for probe in ["/healthz", "/readyz"] {
        let answer = http_get(&format!("127.0.0.1:{METRICS_PORT}"), probe).await;
        assert!(answer.starts_with("HTTP/1.0 200"), "{probe}: {answer}");
    }
    let status = Command::new("kill")
        .args(["-TERM", &service.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    let exit = service.wait().expect("the service exits");
    assert!(
        exit.success(),
        "herald deliver exited with {exit} on SIGTERM (log: {})",
        log.display()
    );

    let expected: HashSet<String> = ns.iter().map(|n| n.notification_id.clone()).collect();
    let mut per_id: BTreeMap<String, usize> = BTreeMap::new();
    for request in receiver.received().into_iter().filter(|r| r.status == 200) {
        *per_id.entry(request.webhook_id).or_default() += 1;
    }
    let unexpected: Vec<_> = per_id.keys().filter(|id| !expected.contains(*id)).collect();
    assert!(unexpected.is_empty(), "ids nobody sent: {unexpected:?}");
    let missing = expected
        .iter()
        .filter(|id| !per_id.contains_key(*id))
        .count();
    assert_eq!(missing, 0, "log: {}", log.display());
    let repeats: usize = per_id.values().map(|c| c - 1).sum();
    let dead = herald_deliver::redrive::list(
        kafka.config(),
        &names,
        &herald_core::topics::ChannelName::parse("webhook").expect("channel"),
    )
    .expect("reading the DLQ");
    assert!(dead.is_empty(), "nothing is dead-lettered: {dead:?}");
    eprintln!(
        "{NOTIFICATIONS} notifications: 0 missing, {repeats} delivered again with the same webhook-id"
    );
}

/// A plain HTTP/1.0 GET, so the test needs no HTTP client of its own.
async fn http_get(address: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("the metrics server answers");
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).await.unwrap();
    text
}
