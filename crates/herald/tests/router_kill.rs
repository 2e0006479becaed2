//! The real `herald router` process killed with SIGKILL several times mid-run and restarted:
//! the channel topics, read with `read_committed`, still hold exactly the expected
//! Notifications, none twice.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use herald_contract::RecordCodec;
use herald_core::Notification;
use herald_core::topics::{ChannelName, TopicNames};
use herald_kafka::testkit::{Isolation, TestKafka, test_registry};
use herald_router::testkit;

const EVENTS: usize = 10_000;
const PARTITIONS: i32 = 4;
const KILLS: usize = 4;

fn start_router(kafka: &TestKafka, topic: &str, log: &std::path::Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("the router's log file");
    Command::new(env!("CARGO_BIN_EXE_herald"))
        .args([
            "router",
            "--brokers",
            &kafka.config().brokers,
            "--registry",
            &test_registry(),
        ])
        .args([
            "--prefix",
            kafka.prefix(),
            "--topics",
            topic,
            "--instance-id",
            "0",
        ])
        // Small transactions, so that a kill lands between or inside many of them.
        .args(["--max-batch", "200", "--partitions", "3"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("herald router starts")
}

/// How many events the router group has committed, over all partitions.
fn committed(kafka: &TestKafka, group: &str, topic: &str) -> usize {
    kafka
        .admin()
        .committed_offsets(group, topic, PARTITIONS)
        .map(|offsets| offsets.iter().flatten().map(|o| *o as usize).sum())
        .unwrap_or(0)
}

/// Waits until the group has committed at least `target` events, or panics naming `what`.
fn wait_for_progress(
    kafka: &TestKafka,
    group: &str,
    topic: &str,
    target: usize,
    what: &str,
) -> usize {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let done = committed(kafka, group, topic);
        if done >= target {
            return done;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {done} of {target} events committed in time"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_killed_with_sigkill_mid_run_still_writes_each_notification_once() {
    let kafka = TestKafka::new("router-sigkill");
    let names = TopicNames::with_prefix(kafka.prefix()).expect("prefix");
    let topic = kafka.create_topic("events.mixed", PARTITIONS).await;
    testkit::create_subscriptions_topic(&kafka, &names).await;
    let subs = testkit::subscriptions(50);
    testkit::put_subscriptions(&kafka, &names, &subs);
    let events: Vec<_> = (0..EVENTS).map(|i| testkit::event("kill", i)).collect();
    testkit::produce_events(&kafka, &topic, &events);
    let expected = testkit::expected(&subs, &events);

    let log = std::env::temp_dir().join(format!("{}-router.log", kafka.prefix()));
    let group = names.router_group();
    let started = Instant::now();
    let mut router = start_router(&kafka, &topic, &log);
    for kill in 1..=KILLS {
        // Kill at 20 %, 40 %, 60 %, 80 % of the input, each time after real progress.
        let target = EVENTS * kill / (KILLS + 1);
        let done = wait_for_progress(&kafka, &group, &topic, target, "before a kill");
        assert!(
            done < EVENTS,
            "the router finished before kill {kill}; the test would prove nothing (log: {})",
            log.display()
        );
        router.kill().expect("SIGKILL");
        router.wait().expect("reaping the killed router");
        eprintln!(
            "kill {kill}: SIGKILL with {done} of {EVENTS} events committed, at {:?}",
            started.elapsed()
        );
        router = start_router(&kafka, &topic, &log);
    }
    wait_for_progress(&kafka, &group, &topic, EVENTS, "after the last restart");
    eprintln!(
        "all {EVENTS} events committed after {:?}",
        started.elapsed()
    );
    // A graceful stop this time: SIGTERM finishes the transaction in flight and exits 0.
    let status = Command::new("kill")
        .args(["-TERM", &router.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    let exit = router.wait().expect("the router exits");
    assert!(
        exit.success(),
        "herald router exited with {exit} on SIGTERM (log: {})",
        log.display()
    );

    let codec = RecordCodec::notification();
    let mut got: BTreeMap<(String, String), usize> = BTreeMap::new();
    for channel in ["webhook", "email"] {
        let channel = ChannelName::parse(channel).expect("channel");
        let records = kafka.read_topic(
            &names.notify(&channel),
            Isolation::ReadCommitted,
            0,
            Duration::from_secs(60),
        );
        for record in records {
            let n: Notification = codec
                .decode(record.value.as_deref().unwrap_or_default())
                .expect("decodes");
            *got.entry((n.event_id, n.subscription_id)).or_default() += 1;
        }
    }
    let duplicates: usize = got.values().map(|c| c.saturating_sub(1)).sum();
    let missing = expected.keys().filter(|k| !got.contains_key(*k)).count();
    let unexpected = got.keys().filter(|k| !expected.contains_key(*k)).count();
    eprintln!(
        "{} notifications expected; {missing} missing, {duplicates} duplicated, {unexpected} unexpected",
        expected.len()
    );
    assert_eq!(
        (missing, duplicates, unexpected),
        (0, 0, 0),
        "router log: {}",
        log.display()
    );
    assert_eq!(got, expected);
}
