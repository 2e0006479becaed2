//! Replays and exports on the real broker: the window's boundaries across partitions, exports
//! read back with pyarrow and fastavro and compared with the source events field for field,
//! and a subscription replay that a receiver gets again with the first delivery's webhook-ids.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use herald_core::subscription::EventTypePattern;
use herald_core::topics::TopicNames;
use herald_deliver::testkit::{Receiver, RunningDeliverer, test_config, webhook_subscription};
use herald_kafka::rdkafka::message::{Header, OwnedHeaders};
use herald_kafka::rdkafka::producer::{BaseRecord, Producer};
use herald_kafka::testkit::TestKafka;
use herald_replay::export::{self, ExportProgress, ExportRequest};
use herald_router::replay::ReplayRequest;
use herald_router::route::EventGate;
use herald_router::testkit::{self, GeneratedEvent, RunningRouter};
use herald_router::{Router, RouterConfig};

/// Produces `event` to `partition` of `topic` with the record timestamp `timestamp_ms`.
fn produce_at(kafka: &TestKafka, topic: &str, placed: &[(i32, i64, &GeneratedEvent)]) {
    let producer = kafka.producer();
    for (partition, timestamp_ms, event) in placed {
        let headers = event.headers.iter().fold(OwnedHeaders::new(), |h, (k, v)| {
            h.insert(Header {
                key: k,
                value: Some(v.as_bytes()),
            })
        });
        producer
            .send(
                BaseRecord::to(topic)
                    .partition(*partition)
                    .timestamp(*timestamp_ms)
                    .key(event.key.as_bytes())
                    .payload(&event.value)
                    .headers(headers),
            )
            .map_err(|(e, _)| e)
            .expect("enqueueing an event");
    }
    producer.flush(Duration::from_secs(30)).expect("flushing");
}

/// A window start a minute in the past: the broker keeps record timestamps as given.
fn window_start() -> i64 {
    herald_core::time::now_ms() - 60_000
}

fn router_config(kafka: &TestKafka, topic: &str) -> RouterConfig {
    let mut config = RouterConfig::new(&kafka.config().brokers);
    config.topic_prefix = kafka.prefix().to_owned();
    config.source_topics = vec![topic.to_owned()];
    config.notify_partitions = 3;
    config
}

fn out_path(kafka: &TestKafka, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(kafka.prefix());
    std::fs::create_dir_all(&dir).expect("a temporary folder");
    dir.join(name)
}

fn run_export(
    kafka: &TestKafka,
    topic: &str,
    from_ms: i64,
    to_ms: i64,
    gate: EventGate,
    path: &Path,
) -> ExportProgress {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let decoder = Router::decoder(&router_config(kafka, topic)).expect("decoder");
    let request = ExportRequest {
        topic: topic.to_owned(),
        from_ms,
        to_ms,
        gate,
        path: path.to_owned(),
    };
    export::export(
        kafka.config(),
        &decoder,
        &request,
        &AtomicBool::new(false),
        runtime.handle(),
        |_| {},
    )
    .expect("the export runs")
}

#[test]
fn the_window_holds_records_from_its_start_up_to_not_including_its_end_in_every_partition() {
    let kafka = TestKafka::new("replay-window");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let topic = runtime.block_on(kafka.create_topic("events.window", 3));
    let start = window_start();
    let end = start + 1_000;
    // Per partition: just before the start, at the start, inside, just before the end, at
    // the end, after it.
    let offsets = [-1, 0, 7, 999, 1_000, 2_000];
    let events: Vec<GeneratedEvent> = (0..18).map(|i| testkit::event("window", i)).collect();
    let placed: Vec<(i32, i64, &GeneratedEvent)> = events
        .iter()
        .enumerate()
        .map(|(i, e)| ((i / 6) as i32, start + offsets[i % 6], e))
        .collect();
    produce_at(&kafka, &topic, &placed);
    let expected: BTreeSet<(i64, String)> = placed
        .iter()
        .filter(|(_, ts, _)| *ts >= start && *ts < end)
        .map(|(_, ts, e)| (*ts, e.id.clone()))
        .collect();
    assert_eq!(expected.len(), 9);

    let path = out_path(&kafka, "window.ndjson");
    let done = run_export(&kafka, &topic, start, end, EventGate::default(), &path);
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let got: BTreeSet<(i64, String)> = lines
        .iter()
        .map(|l| {
            (
                l["kafka"]["timestamp"].as_i64().unwrap(),
                l["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(got, expected);
    assert_eq!(lines.len(), 9, "no event twice");
    let partitions: BTreeSet<i64> = lines
        .iter()
        .map(|l| l["kafka"]["partition"].as_i64().unwrap())
        .collect();
    assert_eq!(partitions, BTreeSet::from([0, 1, 2]));
    assert!(done.complete);
    assert_eq!((done.written, done.skipped), (9, 0));

    // A type pattern narrows the same window.
    let path = out_path(&kafka, "window-paid.ndjson");
    let gate = EventGate {
        types: Some(EventTypePattern::parse("order.paid").unwrap()),
        filter: None,
    };
    run_export(&kafka, &topic, start, end, gate, &path);
    let paid = std::fs::read_to_string(&path).unwrap();
    let expected_paid = placed
        .iter()
        .filter(|(_, ts, e)| *ts >= start && *ts < end && e.event_type == "order.paid")
        .count();
    assert_eq!(paid.lines().count(), expected_paid);
    assert!(paid.lines().all(|l| l.contains("\"type\":\"order.paid\"")));
}

#[test]
fn avro_and_parquet_exports_match_the_source_events_field_for_field() {
    let kafka = TestKafka::new("replay-export");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let topic = runtime.block_on(kafka.create_topic("events.export", 2));
    let start = window_start();
    let events: Vec<GeneratedEvent> = (0..42).map(|i| testkit::event("export", i)).collect();
    // Two events outside the window, the rest inside, over both partitions.
    let placed: Vec<(i32, i64, &GeneratedEvent)> = events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let ts = match i {
                0 => start - 5,
                41 => start + 10_000,
                _ => start + i as i64,
            };
            ((i % 2) as i32, ts, e)
        })
        .collect();
    produce_at(&kafka, &topic, &placed);
    let end = start + 1_000;
    let in_window: BTreeSet<String> = events[1..41].iter().map(|e| e.id.clone()).collect();
    let paid: BTreeSet<String> = events[1..41]
        .iter()
        .filter(|e| e.event_type == "order.paid")
        .map(|e| e.id.clone())
        .collect();

    let avro = out_path(&kafka, "events.avro");
    let done = run_export(&kafka, &topic, start, end, EventGate::default(), &avro);
    assert_eq!(done.written, 40);
    let parquet = out_path(&kafka, "paid.parquet");
    let gate = EventGate {
        types: Some(EventTypePattern::parse("order.paid").unwrap()),
        filter: None,
    };
    let done = run_export(&kafka, &topic, start, end, gate, &parquet);
    assert_eq!(done.written as usize, paid.len());
    assert!(
        !parquet.with_extension("parquet.avro.partial").exists(),
        "the intermediate Avro file is removed"
    );

    let python = std::env::var("HERALD_TEST_PYTHON").expect(
        "HERALD_TEST_PYTHON is not set: scripts/test builds the venv with pyarrow and fastavro",
    );
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let output = std::process::Command::new(python)
        .arg(repo.join("tests/interop/export_reader.py"))
        .args(["--brokers", &kafka.config().brokers, "--topic", &topic])
        .arg("--schemas")
        .arg(repo.join("schemas/events"))
        .arg("--avro")
        .arg(&avro)
        .arg("--parquet")
        .arg(&parquet)
        .output()
        .expect("running export_reader.py");
    assert!(
        output.status.success(),
        "export_reader.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let ids = |key: &str| -> BTreeSet<String> {
        report[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(report["mismatches"], serde_json::json!([]), "{report}");
    assert_eq!(ids("avro_ids"), in_window);
    assert_eq!(ids("parquet_ids"), paid);
    assert_eq!(report["avro_ids"].as_array().unwrap().len(), 40);

    // Parquet holds one event type: without one the export says so before reading anything.
    let refused = export::export(
        kafka.config(),
        &Router::decoder(&router_config(&kafka, &topic)).unwrap(),
        &ExportRequest {
            topic: topic.clone(),
            from_ms: start,
            to_ms: end,
            gate: EventGate::default(),
            path: out_path(&kafka, "all.parquet"),
        },
        &AtomicBool::new(false),
        runtime.handle(),
        |_| {},
    );
    let message = refused.expect_err("refused").to_string();
    assert!(message.contains("--type"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_replay_redelivers_the_window_with_the_first_deliverys_webhook_ids() {
    let kafka = TestKafka::new("replay-sub");
    let names = TopicNames::with_prefix(kafka.prefix()).unwrap();
    let topic = kafka.create_topic("events.sub", 2).await;
    let deliver = test_config(&kafka, &[200]);
    herald_deliver::ensure_topics(&deliver).await.unwrap();
    testkit::create_subscriptions_topic(&kafka, &names).await;
    let receiver = Receiver::start().await;
    let a = webhook_subscription("sub-a", "app-a", &receiver.url("a"));
    let b = webhook_subscription("sub-b", "app-b", &receiver.url("b"));
    testkit::put_subscriptions(&kafka, &names, &[a, b]);

    let start = window_start();
    let end = start + 1_000;
    // Publish-subscribe events only: point-to-point and broadcast ones go to other apps.
    let events: Vec<GeneratedEvent> = (0..)
        .map(|i| testkit::event("sub", i))
        .filter(|e| e.recipient.is_none() && e.broadcast.is_none())
        .take(12)
        .collect();
    let placed: Vec<(i32, i64, &GeneratedEvent)> = events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let ts = match i {
                0 | 1 => start - 100,
                10 | 11 => end + 100,
                _ => start + 100 * (i as i64 - 2),
            };
            ((i % 2) as i32, ts, e)
        })
        .collect();
    let router = {
        let config = router_config(&kafka, &topic);
        tokio::task::spawn_blocking(move || RunningRouter::start(config))
            .await
            .unwrap()
            .expect("router starts")
    };
    let deliverer = RunningDeliverer::start(deliver).expect("deliverer starts");
    let (t, p) = (topic.clone(), placed.len());
    let producer_kafka = TestKafka::with_brokers(&kafka.config().brokers, "replay-sub-producer");
    let owned: Vec<(i32, i64, GeneratedEvent)> = placed
        .iter()
        .map(|(part, ts, e)| (*part, *ts, (*e).clone()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let refs: Vec<(i32, i64, &GeneratedEvent)> =
            owned.iter().map(|(a, b, c)| (*a, *b, c)).collect();
        produce_at(&producer_kafka, &t, &refs)
    })
    .await
    .unwrap();
    let first = receiver
        .wait_until(Duration::from_secs(60), |got| got.len() >= 2 * p)
        .await;
    assert_eq!(first.len(), 2 * p, "each event once to each subscription");
    tokio::task::spawn_blocking(move || router.stop())
        .await
        .unwrap()
        .unwrap();
    // The webhook-id each event got at /a the first time, by the event id in the body.
    let event_of = |body: &str| -> String {
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        json["id"].as_str().unwrap().to_owned()
    };
    let first_ids: BTreeMap<String, String> = first
        .iter()
        .filter(|r| r.path == "a")
        .map(|r| (event_of(&r.body), r.webhook_id.clone()))
        .collect();

    let request = ReplayRequest {
        topic: topic.clone(),
        from_ms: start,
        to_ms: end,
        gate: EventGate::default(),
        subscription: Some("sub-a".to_owned()),
        fresh_ids: false,
    };
    let config = router_config(&kafka, &topic);
    let done = tokio::task::spawn_blocking(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let router = runtime.block_on(Router::build(config)).unwrap();
        router.replay(
            &request,
            &AtomicBool::new(false),
            runtime.handle().clone(),
            |_| {},
        )
    })
    .await
    .unwrap()
    .expect("the replay runs");
    assert_eq!(done.notifications, 8, "{done:?}");
    assert!(done.complete);

    let all = receiver
        .wait_until(Duration::from_secs(60), |got| got.len() >= 2 * p + 8)
        .await;
    // Give a stray extra delivery time to show up before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let all_now = receiver.received();
    assert_eq!(all_now.len(), 2 * p + 8, "only the window, only for sub-a");
    let replayed: BTreeMap<String, String> = all[2 * p..]
        .iter()
        .map(|r| {
            assert_eq!(r.path, "a", "the replay was for sub-a only");
            (event_of(&r.body), r.webhook_id.clone())
        })
        .collect();
    let window: BTreeSet<String> = events[2..10].iter().map(|e| e.id.clone()).collect();
    assert_eq!(replayed.keys().cloned().collect::<BTreeSet<_>>(), window);
    for (event, id) in &replayed {
        assert_eq!(
            Some(id),
            first_ids.get(event),
            "same webhook-id for {event}"
        );
    }
    tokio::task::spawn_blocking(move || deliverer.stop())
        .await
        .unwrap()
        .unwrap();
}
