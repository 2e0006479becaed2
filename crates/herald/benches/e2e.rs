//! End to end, as platform teams run Herald: the real `herald router` and `herald deliver`
//! processes (release build) on the real broker, events produced by an upstream producer and
//! received by a local keep-alive webhook receiver.
//!
//! 1. **Latency at fixed rates** (`HERALD_BENCH_RATES`, default 1000,5000,10000 events/s, each
//!    for `HERALD_BENCH_SECONDS`, default 20 s): the time from handing an event to the
//!    producer to the receiver getting its webhook, p50 / p99 / p99.9 over every notification.
//! 2. **Router memory with a backlog**: `HERALD_BENCH_BACKLOG` (default 1,000,000) events are
//!    produced first, then the router drains them; prints its peak RSS and drain rate. (The
//!    delivery worker's RSS with a 1,000,000-notification backlog is the `deliver` benchmark's.)
//!
//! Run: `scripts/bench e2e`, or `scripts/services up && eval "$(scripts/services env)" &&
//! cargo bench -p herald --bench e2e`. Writes `target/bench/e2e.{json,md}` and
//! `e2e-latency.svg`.

mod common;

use std::time::{Duration, Instant};

use common::Rig;
use herald_bench::{Report, percentile, thousands};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Latency {
    rate: f64,
    notifications: usize,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    max_ms: f64,
    /// Send → the router building the Notification.
    router_p50_ms: f64,
    router_p99_ms: f64,
    /// Send → the broker appending the event (the events topic uses LogAppendTime): the load
    /// generator's and the broker's part of the router's share.
    append_p50_ms: f64,
    append_p99_ms: f64,
    /// The router's transactions, begin → commit: upper bounds of the histogram buckets
    /// holding the median and the 99th percentile.
    transaction_p50_ms: f64,
    transaction_p99_ms: f64,
}

/// Upper bounds (ms) of the `herald_router_transaction_seconds` buckets holding the median and
/// the 99th percentile, from the router's `/metrics`.
async fn transaction_quantiles(port: u16) -> (f64, f64) {
    let text = match reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await {
        Ok(response) => response.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    let buckets: Vec<(f64, f64)> = text
        .lines()
        .filter(|l| {
            l.starts_with("herald_router_transaction_seconds_bucket{")
                && l.contains("outcome=\"committed\"")
        })
        .filter_map(|l| {
            let (_, le) = l.split_once("le=\"")?;
            let (le, rest) = le.split_once('"')?;
            let count = rest.rsplit(' ').next()?.parse().ok()?;
            Some((le.parse().unwrap_or(f64::INFINITY), count))
        })
        .collect();
    let total = buckets.last().map_or(0.0, |b| b.1);
    let bound = |q: f64| {
        buckets
            .iter()
            .find(|(_, n)| *n >= q * total && total > 0.0)
            .map_or(f64::NAN, |(le, _)| le * 1000.0)
    };
    (bound(0.5), bound(0.99))
}

async fn latency_at(rate: f64, seconds: u64) -> Latency {
    let rig = Rig::new(&format!("e2e-{rate}")).await;
    let events = common::events(&format!("r{rate}"), (rate * seconds as f64) as usize);
    let expected = rig.expected(&events);
    rig.sink.measure_latency(expected.clone(), events.len());
    let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut router = rig
        .router(0)
        .with_args(&["--metrics-addr", &format!("127.0.0.1:{metrics_port}")]);
    let mut workers = [rig.deliver(0), rig.deliver(1)];
    router.start();
    for worker in &mut workers {
        worker.start();
    }
    rig.settle(&[&router, &workers[0], &workers[1]]).await;
    let clock = rig.sink.send_clock();
    let config = rig.kafka.config().clone();
    let topic = rig.events_topic.clone();
    let failed = tokio::task::spawn_blocking(move || {
        common::produce(&config, &topic, &events, Some(rate), Some(&clock))
    })
    .await
    .expect("the producer");
    assert_eq!(failed, 0, "{failed} events not acknowledged");
    let deadline = Instant::now() + Duration::from_secs(120);
    while rig.sink.unique() < expected.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let transactions = transaction_quantiles(metrics_port).await;
    router.stop();
    for worker in &mut workers {
        worker.stop();
    }
    let mut latencies = rig.sink.with_tally(|t| t.latencies_us.clone());
    assert!(
        latencies.len() >= expected.len(),
        "only {} of {} notifications arrived at {rate}/s (logs: {})",
        latencies.len(),
        expected.len(),
        rig.logs.display()
    );
    latencies.sort_unstable();
    let ms = |p: f64| percentile(&latencies, p) as f64 / 1000.0;
    // The router's share: from the send to the Notification's `created_at` (stamped as the
    // router builds it; the millisecond clock of the same machine).
    let channel = herald_core::topics::ChannelName::parse("webhook").expect("a channel");
    let records = tokio::task::block_in_place(|| {
        rig.kafka.read_topic(
            &rig.names.notify(&channel),
            herald_kafka::testkit::Isolation::ReadCommitted,
            expected.len(),
            Duration::from_secs(60),
        )
    });
    let codec = herald_contract::RecordCodec::notification();
    let mut router_us: Vec<u64> = records
        .iter()
        .filter_map(|r| {
            codec
                .decode::<herald_core::Notification>(r.value.as_deref()?)
                .ok()
        })
        .filter_map(|n| {
            let sent = rig.sink.sent_wall_ms(*expected.get(&n.notification_id)?)?;
            Some(((n.created_at as f64 - sent).max(0.0) * 1000.0) as u64)
        })
        .collect();
    router_us.sort_unstable();
    let router_ms = |p: f64| percentile(&router_us, p) as f64 / 1000.0;
    // Send → the broker appending the event (its LogAppendTime).
    let index: std::collections::HashMap<&str, usize> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let appended = tokio::task::block_in_place(|| {
        rig.kafka.read_topic(
            &rig.events_topic,
            herald_kafka::testkit::Isolation::ReadCommitted,
            ids.len(),
            Duration::from_secs(60),
        )
    });
    let mut append_us: Vec<u64> = appended
        .iter()
        .filter_map(|r| {
            let id = r.headers.iter().find(|(k, _)| k == "ce_id")?.1.as_deref()?;
            let i = *index.get(std::str::from_utf8(id).ok()?)?;
            let sent = rig.sink.sent_wall_ms(i)?;
            Some(((r.timestamp_ms? as f64 - sent).max(0.0) * 1000.0) as u64)
        })
        .collect();
    append_us.sort_unstable();
    let append_ms = |p: f64| percentile(&append_us, p) as f64 / 1000.0;
    Latency {
        rate,
        notifications: latencies.len(),
        p50_ms: ms(0.5),
        p99_ms: ms(0.99),
        p999_ms: ms(0.999),
        max_ms: ms(1.0),
        router_p50_ms: router_ms(0.5),
        router_p99_ms: router_ms(0.99),
        append_p50_ms: append_ms(0.5),
        append_p99_ms: append_ms(0.99),
        transaction_p50_ms: transactions.0,
        transaction_p99_ms: transactions.1,
    }
}

/// Router peak RSS (MiB) and drain rate (events/s) with `backlog` events waiting.
async fn router_backlog(backlog: usize) -> (f64, f64) {
    let rig = Rig::new("e2e-backlog").await;
    let events = common::events("backlog", backlog);
    let produced_in = Instant::now();
    let config = rig.kafka.config().clone();
    let topic = rig.events_topic.clone();
    let failed =
        tokio::task::spawn_blocking(move || common::produce(&config, &topic, &events, None, None))
            .await
            .expect("the producer");
    assert_eq!(failed, 0, "{failed} events not acknowledged");
    eprintln!(
        "backlog of {backlog} events produced in {:?}",
        produced_in.elapsed()
    );
    let mut router = rig.router(0);
    router.start();
    let started = Instant::now();
    let group = rig.names.router_group();
    let deadline = started + Duration::from_secs(900);
    let mut first_progress = None;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        router.sample_rss();
        let done: i64 = tokio::task::block_in_place(|| rig.committed(&group, &rig.events_topic))
            .iter()
            .sum();
        if done > 0 && first_progress.is_none() {
            first_progress = Some(Instant::now());
        }
        if done as usize >= backlog {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the router drained {done} of {backlog} in 15 minutes"
        );
    }
    let elapsed = first_progress.unwrap_or(started).elapsed().as_secs_f64();
    router.sample_rss();
    let peak = router.peak_rss_mib;
    router.stop();
    (peak, backlog as f64 / elapsed)
}

fn main() {
    let rates: Vec<f64> = std::env::var("HERALD_BENCH_RATES")
        .unwrap_or_else(|_| "1000,5000,10000".to_owned())
        .split(',')
        .filter_map(|r| r.trim().parse().ok())
        .collect();
    let seconds: u64 = env_or("HERALD_BENCH_SECONDS", 20);
    let backlog: usize = env_or("HERALD_BENCH_BACKLOG", 1_000_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let (latencies, (rss, drain)) = runtime.block_on(async {
        let mut latencies = Vec::new();
        for rate in &rates {
            let l = latency_at(*rate, seconds).await;
            eprintln!(
                "{} events/s: p50 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms",
                l.rate, l.p50_ms, l.p99_ms, l.p999_ms
            );
            latencies.push(l);
        }
        (latencies, router_backlog(backlog).await)
    });

    let mut report = Report::new(
        "e2e",
        "End to end: producer → herald router → herald deliver (2 workers) → local webhook receiver, real broker",
    );
    for l in &latencies {
        let rate = thousands(l.rate as i64);
        let rows = [
            (
                format!(
                    "latency at {rate} events/s, {} notifications: p50 / p99 / p99.9 / max (ms)",
                    thousands(l.notifications as i64)
                ),
                format!(
                    "{:.1} / {:.1} / {:.1} / {:.1}",
                    l.p50_ms, l.p99_ms, l.p999_ms, l.max_ms
                ),
            ),
            (
                format!(
                    "  of which send → router builds the Notification at {rate} events/s: p50 / p99 (ms)"
                ),
                format!("{:.1} / {:.1}", l.router_p50_ms, l.router_p99_ms),
            ),
            (
                format!(
                    "    of which send → the broker appends the event at {rate} events/s: p50 / p99 (ms, whole ms)"
                ),
                format!("{:.0} / {:.0}", l.append_p50_ms, l.append_p99_ms),
            ),
            (
                format!(
                    "  router transactions at {rate} events/s, begin → commit: p50 / p99 at most (ms)"
                ),
                format!("{:.0} / {:.0}", l.transaction_p50_ms, l.transaction_p99_ms),
            ),
        ];
        for (measure, value) in rows {
            report.row(measure, value, "");
        }
    }
    report.row(
        format!(
            "herald router peak RSS draining a {} event backlog (MiB)",
            thousands(backlog as i64)
        ),
        format!("{rss:.0}"),
        "",
    );
    report.row(
        "herald router drain rate (events/s)",
        thousands(drain as i64),
        "",
    );
    let point = |f: fn(&Latency) -> f64| -> Vec<(f64, f64)> {
        latencies.iter().map(|l| (l.rate, f(l))).collect()
    };
    report.lines(
        "latency",
        "End-to-end latency by event rate",
        ("events/s", "ms"),
        &[
            ("p50".to_owned(), point(|l| l.p50_ms)),
            ("p99".to_owned(), point(|l| l.p99_ms)),
            ("p99.9".to_owned(), point(|l| l.p999_ms)),
        ],
    );
    report.field(
        "latency",
        serde_json::json!(latencies
            .iter()
            .map(|l| serde_json::json!({
                "rate_per_second": l.rate, "notifications": l.notifications,
                "p50_ms": l.p50_ms, "p99_ms": l.p99_ms, "p999_ms": l.p999_ms, "max_ms": l.max_ms,
                "router_p50_ms": l.router_p50_ms, "router_p99_ms": l.router_p99_ms,
                "append_p50_ms": l.append_p50_ms, "append_p99_ms": l.append_p99_ms,
                "transaction_p50_ms_at_most": l.transaction_p50_ms,
                "transaction_p99_ms_at_most": l.transaction_p99_ms,
            }))
            .collect::<Vec<_>>()),
    );
    report.field(
        "router_backlog",
        serde_json::json!({"events": backlog, "peak_rss_mib": rss, "events_per_second": drain}),
    );
    report.finish();
}
