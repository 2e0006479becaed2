//! Export throughput: a window of 1,000,000 events (the router workload's four types,
//! single-object Avro, 6 partitions) exported to NDJSON, Avro and Parquet on the real broker,
//! in one run so the formats compare side by side.
//!
//! Run: `scripts/services up && cargo bench -p herald-replay --bench export`
//! (`HERALD_BENCH_EVENTS`, default 1000000; `HERALD_BROKERS`, default 127.0.0.1:9092).
//! Prints a table and writes `target/bench/export.json`.

/// The allocator the herald binary uses, so the figures are the product's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use herald_core::subscription::EventTypePattern;
use herald_kafka::testkit::TestKafka;
use herald_replay::export::{self, ExportRequest};
use herald_router::route::EventGate;
use herald_router::testkit;
use herald_router::{Router, RouterConfig};

fn main() {
    let brokers = std::env::var("HERALD_BROKERS")
        .or_else(|_| std::env::var("HERALD_TEST_BROKERS"))
        .unwrap_or_else(|_| "127.0.0.1:9092".to_owned());
    let total: usize = std::env::var("HERALD_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let kafka = TestKafka::with_brokers(&brokers, "bench-export");
    let topic = runtime.block_on(kafka.create_topic("events.export", 6));
    eprintln!("producing {total} events to {topic}");
    let from_ms = herald_core::time::now_ms() - 1;
    for chunk in (0..total).collect::<Vec<_>>().chunks(100_000) {
        let events: Vec<_> = chunk
            .iter()
            .map(|i| testkit::event_among_tenants("bench", *i, 250))
            .collect();
        testkit::produce_events(&kafka, &topic, &events);
    }
    let to_ms = herald_core::time::now_ms() + 1;
    let mut config = RouterConfig::new(&brokers);
    config.topic_prefix = kafka.prefix().to_owned();
    let decoder = Router::decoder(&config).expect("decoder");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench");
    std::fs::create_dir_all(&dir).expect("target/bench");

    let paid = || EventGate {
        types: Some(EventTypePattern::parse("order.paid").expect("a pattern")),
        filter: None,
    };
    let runs = [
        ("ndjson, all types", "export.ndjson", EventGate::default()),
        ("avro, all types", "export.avro", EventGate::default()),
        ("avro, order.paid", "export-paid.avro", paid()),
        ("parquet, order.paid", "export-paid.parquet", paid()),
    ];
    let mut rows = Vec::new();
    for (name, file, gate) in runs {
        let path = dir.join(file);
        let request = ExportRequest {
            topic: topic.clone(),
            from_ms,
            to_ms,
            gate,
            path: path.clone(),
        };
        let started = Instant::now();
        let done = export::export(
            kafka.config(),
            &decoder,
            &request,
            &AtomicBool::new(false),
            runtime.handle(),
            |_| {},
        )
        .expect("export");
        let seconds = started.elapsed().as_secs_f64();
        let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        assert!(done.complete && done.skipped == 0, "{done:?}");
        rows.push((name, done.read, done.written, seconds, bytes));
        let _ = std::fs::remove_file(&path);
    }
    println!();
    println!("export benchmark: a window of {total} events, 6 partitions, read_committed");
    println!(
        "{:<22} {:>10} {:>10} {:>9} {:>14} {:>10}",
        "format", "read", "written", "seconds", "read events/s", "MiB"
    );
    for (name, read, written, seconds, bytes) in &rows {
        println!(
            "{name:<22} {read:>10} {written:>10} {seconds:>9.2} {:>14.0} {:>10.1}",
            *read as f64 / seconds,
            *bytes as f64 / (1 << 20) as f64
        );
    }
    let json: Vec<_> = rows
        .iter()
        .map(|(name, read, written, seconds, bytes)| {
            serde_json::json!({
                "format": name, "read": read, "written": written, "seconds": seconds,
                "read_events_per_second": *read as f64 / seconds, "bytes": bytes,
            })
        })
        .collect();
    std::fs::write(
        dir.join("export.json"),
        serde_json::to_string_pretty(&json).expect("json") + "\n",
    )
    .expect("writing export.json");
}
