//! Chaos runs: the whole pipeline — events topic → `herald router` → `herald.notify.webhook`
//! → two `herald deliver` workers → a local receiver — under faults, each run checked against
//! the expected set of notifications:
//!
//! - **kill**: SIGKILL the router or one of the workers at random moments (seeded), restart it;
//! - **broker**: stop the Kafka broker mid-run (`scripts/services`' broker, SIGTERM), start it
//!   again 15 s later;
//! - **receivers**: the receiver stops listening for 15 s (connection refused), then comes back;
//! - **poison**: 1 % of the events are undecodable (bad magic, unknown fingerprint, truncated
//!   datum, unknown registry id); they must all land in the router's DLQ.
//!
//! Each run reports lost notifications (must be 0), duplicate deliveries (allowed: delivery is
//! at least once, but each must repeat the `webhook-id` of the first), duplicate Notification
//! records in the channel topic read with `read_committed` (must be 0: the router is exactly
//! once), and the recovery time after each fault. The benchmark fails if a run loses anything
//! or duplicates a Notification record.
//!
//! Run: `scripts/bench chaos`, or `scripts/services up && eval "$(scripts/services env)" &&
//! cargo bench -p herald --bench chaos [kill broker receivers poison]`
//! (`HERALD_BENCH_CHAOS_EVENTS`, default 200000; `HERALD_BENCH_SEED`). Writes
//! `target/bench/chaos.{json,md}` and `chaos-timeline.svg`.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Outcome, Rig};
use herald_bench::Report;
use herald_contract::{Catalog, framing};
use herald_core::topics::ChannelName;
use herald_kafka::testkit::Isolation;

/// Events produced per second during a run: faults land while upstream keeps producing.
const RATE: f64 = 10_000.0;
/// How long a broker or receiver outage lasts.
const OUTAGE: Duration = Duration::from_secs(15);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Kill,
    Broker,
    Receivers,
    Poison,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Kill => "kill",
            Kind::Broker => "broker",
            Kind::Receivers => "receivers",
            Kind::Poison => "poison",
        }
    }
}

/// One fault and how long the pipeline took to make progress again after it was repaired.
#[derive(Debug, serde::Serialize)]
struct Fault {
    what: String,
    at_s: f64,
    recovery_s: Option<f64>,
}

/// A recovery being timed: the fault's index, when it was repaired, and the services that must
/// make progress again, each with its group's committed and end offsets at the repair (see
/// [`moved_on`]); with none, the first new delivery after the repair counts.
type Watch = (usize, Instant, Vec<(String, Vec<(i64, i64)>)>);

#[derive(Debug, serde::Serialize)]
struct RunResult {
    scenario: &'static str,
    events: usize,
    poison: usize,
    dead_lettered: usize,
    dead_letter_kinds: BTreeMap<String, usize>,
    outcome: Outcome,
    faults: Vec<Fault>,
    unexpected_exits: usize,
    clean_exits: bool,
    seconds: f64,
    /// New deliveries per second since the start.
    timeline: Vec<usize>,
    skipped: Option<String>,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The broker `scripts/services` runs, if it is the one the benchmark talks to.
fn services_broker_pid() -> Option<u32> {
    let dir = std::env::var_os("HERALD_SERVICES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".herald/services"));
    let pid: u32 = std::fs::read_to_string(dir.join("kafka/kafka.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let port = std::fs::read_to_string(dir.join("kafka/port")).ok()?;
    let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).ok()?;
    (cmdline.contains("kafka.Kafka") && common::brokers().ends_with(&format!(":{}", port.trim())))
        .then_some(pid)
}

fn stop_broker(pid: u32) {
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::path::Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
}

fn start_broker() {
    let status = Command::new(repo().join("scripts/services"))
        .arg("up")
        .stdout(std::process::Stdio::null())
        .status()
        .expect("scripts/services runs");
    assert!(
        status.success(),
        "scripts/services up failed after the broker stop"
    );
}

/// Poison record `n`: one of the undecodable kinds the router must dead-letter.
fn poison(n: usize, good_value: &[u8], registry: bool) -> Vec<u8> {
    let catalog = Catalog::builtin();
    let paid = catalog.by_event_type("order.paid").expect("order.paid");
    let datum = &good_value[10..];
    match n % if registry { 4 } else { 3 } {
        0 => b"\x07not a framing Herald reads".to_vec(),
        1 => framing::single_object(0x0123_4567_89ab_cdef, datum),
        2 => framing::single_object(paid.entry.fingerprint(), &[0x02, 0x80]),
        _ => framing::confluent(2_000_000_000, datum),
    }
}

/// The group and input topic of a service.
fn input_of(rig: &Rig, service: &str) -> (String, String) {
    let channel = ChannelName::parse("webhook").expect("a channel");
    if service.starts_with("router") {
        (rig.names.router_group(), rig.events_topic.clone())
    } else {
        (
            rig.names.deliver_group(&channel),
            rig.names.notify(&channel),
        )
    }
}

/// Per-partition committed offsets of the group that `service` belongs to, with the
/// partitions' end offsets: a partition that still had work at a restart has recovered once
/// its committed offset moves past the baseline.
fn progress(rig: &Rig, service: &str) -> Vec<(i64, i64)> {
    let (group, topic) = input_of(rig, service);
    tokio::task::block_in_place(|| {
        // Right after a broker restart the group coordinator may not answer yet: ask again,
        // since an empty baseline would pass for a recovered one.
        let deadline = Instant::now() + Duration::from_secs(60);
        let committed = loop {
            let committed = rig.committed(&group, &topic);
            if committed.len() == common::PARTITIONS as usize || Instant::now() > deadline {
                break committed;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        let ends = rig.end_offsets(&topic);
        committed.into_iter().zip(ends).collect()
    })
}

/// Whether every partition that had work at `baseline` has moved on since.
fn moved_on(rig: &Rig, service: &str, baseline: &[(i64, i64)]) -> bool {
    let (group, topic) = input_of(rig, service);
    let now = tokio::task::block_in_place(|| rig.committed(&group, &topic));
    !baseline.is_empty()
        && now.len() == baseline.len()
        && now
            .iter()
            .zip(baseline)
            .all(|(now, (then, end))| then >= end || now > then)
}

async fn run(kind: Kind, total: usize, seed: u64) -> RunResult {
    let mut rig = Rig::new(&format!("chaos-{}", kind.name())).await;
    let registry = std::env::var("HERALD_TEST_REGISTRY").ok();
    let mut events = common::events(kind.name(), total);
    let mut poisoned = 0;
    if kind == Kind::Poison {
        for (i, event) in events.iter_mut().enumerate() {
            if i % 100 == 42 {
                event.value = poison(poisoned, &event.value, registry.is_some());
                poisoned += 1;
            }
        }
    }
    let good: Vec<_> = events
        .iter()
        .enumerate()
        .filter(|(i, _)| kind != Kind::Poison || i % 100 != 42)
        .map(|(_, e)| e.clone())
        .collect();
    let expected = rig.expected(&good);
    let broker = services_broker_pid();
    if kind == Kind::Broker && broker.is_none() {
        return skipped(
            kind,
            total,
            &expected,
            "the broker was not started by scripts/services",
        );
    }

    let mut router = rig.router(0);
    if let Some(registry) = &registry {
        router = router.with_args(&["--registry", registry]);
    }
    let mut services = vec![router, rig.deliver(0), rig.deliver(1)];
    for service in &mut services {
        service.start();
    }
    rig.settle(&services.iter().collect::<Vec<_>>()).await;
    let started = Instant::now();
    eprintln!(
        "chaos {}: {total} events at {RATE}/s, {} notifications expected (logs: {})",
        kind.name(),
        expected.len(),
        rig.logs.display()
    );
    let producer = {
        let rig_kafka = rig.kafka.config().clone();
        let topic = rig.events_topic.clone();
        let events = events.clone();
        std::thread::spawn(move || common::produce(&rig_kafka, &topic, &events, Some(RATE), None))
    };

    let mut rng = fastrand::Rng::with_seed(seed);
    let mut faults: Vec<Fault> = Vec::new();
    let mut watching: Option<Watch> = None;
    let mut next_fault = Instant::now() + Duration::from_millis(rng.u64(2000..4000));
    let kills_wanted = 6;
    let deadline = started + Duration::from_secs(900);
    let mut outage_done = false;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        for service in &mut services {
            service.supervise();
        }
        let delivered = rig.sink.unique();
        let done = delivered >= expected.len() && producer.is_finished();
        if let Some((index, repaired, watch)) = &watching {
            let recovered = if watch.is_empty() {
                rig.sink.first_new_after(*repaired).is_some()
            } else {
                watch
                    .iter()
                    .all(|(service, baseline)| moved_on(&rig, service, baseline))
            };
            if recovered || done {
                let at = if watch.is_empty() {
                    rig.sink.first_new_after(*repaired)
                } else {
                    recovered.then(Instant::now)
                };
                faults[*index].recovery_s = at.map(|at| (at - *repaired).as_secs_f64());
                watching = None;
            }
        }
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "chaos {}: {delivered} of {} delivered after 15 minutes (logs: {})",
            kind.name(),
            expected.len(),
            rig.logs.display()
        );
        // Faults land while work remains: kills from a few seconds in, outages once a fifth
        // of the notifications have arrived, none in the last tenth.
        let due = match kind {
            Kind::Kill => Instant::now() >= next_fault,
            _ => delivered * 5 >= expected.len(),
        };
        if watching.is_some() || !due || delivered * 10 > expected.len() * 9 {
            continue;
        }
        let at_s = started.elapsed().as_secs_f64();
        match kind {
            Kind::Kill if faults.len() < kills_wanted => {
                let target = rng.usize(0..services.len());
                let baseline = progress(&rig, &services[target].name);
                let service = &mut services[target];
                service.kill();
                tokio::time::sleep(Duration::from_millis(rng.u64(0..2000))).await;
                service.start();
                eprintln!("  {at_s:.1}s: SIGKILL {}, restarted", service.name);
                faults.push(Fault {
                    what: format!("SIGKILL {}", service.name),
                    at_s,
                    recovery_s: None,
                });
                watching = Some((
                    faults.len() - 1,
                    Instant::now(),
                    vec![(service.name.clone(), baseline)],
                ));
                next_fault = Instant::now() + Duration::from_millis(rng.u64(500..3000));
            }
            Kind::Broker if !outage_done => {
                let pid = broker.expect("checked above");
                eprintln!("  {at_s:.1}s: stopping the broker");
                tokio::task::block_in_place(|| stop_broker(pid));
                tokio::time::sleep(OUTAGE).await;
                tokio::task::block_in_place(start_broker);
                eprintln!("  {:.1}s: broker back", started.elapsed().as_secs_f64());
                faults.push(Fault {
                    what: format!("broker stopped for {}s", OUTAGE.as_secs()),
                    at_s,
                    recovery_s: None,
                });
                // Recovered once both stages move again: the router commits past where it
                // stood, and so do the delivery workers.
                let watch = ["router-0", "deliver-0"]
                    .map(|s| (s.to_owned(), progress(&rig, s)))
                    .to_vec();
                watching = Some((faults.len() - 1, Instant::now(), watch));
                outage_done = true;
            }
            Kind::Receivers if !outage_done => {
                eprintln!("  {at_s:.1}s: receiver down");
                rig.sink.down().await;
                tokio::time::sleep(OUTAGE).await;
                rig.sink.up().await;
                eprintln!("  {:.1}s: receiver back", started.elapsed().as_secs_f64());
                faults.push(Fault {
                    what: format!("receiver down for {}s", OUTAGE.as_secs()),
                    at_s,
                    recovery_s: None,
                });
                watching = Some((faults.len() - 1, Instant::now(), Vec::new()));
                outage_done = true;
            }
            _ => {}
        }
    }
    let produced = producer.join().expect("the producer thread");
    // Late duplicates (a worker redelivering what it had not committed) arrive within seconds.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let seconds = started.elapsed().as_secs_f64();
    let mut clean_exits = true;
    let mut unexpected_exits = 0;
    for service in &mut services {
        service.supervise();
        unexpected_exits += service.unexpected_exits;
        clean_exits &= service.stop();
    }
    let outcome = tokio::task::block_in_place(|| common::outcome(&rig, &expected));
    let (dead_lettered, dead_letter_kinds) = if poisoned > 0 {
        dead_letters(&rig, poisoned)
    } else {
        (0, BTreeMap::new())
    };
    let timeline = rig.sink.with_tally(|t| {
        let mut per_second = vec![0; seconds.ceil() as usize + 1];
        for at in &t.first_arrivals {
            let s = at.saturating_duration_since(started).as_secs() as usize;
            if let Some(slot) = per_second.get_mut(s) {
                *slot += 1;
            }
        }
        per_second
    });
    assert_eq!(
        produced, 0,
        "{produced} events were not acknowledged by the broker"
    );
    RunResult {
        scenario: kind.name(),
        events: total,
        poison: poisoned,
        dead_lettered,
        dead_letter_kinds,
        outcome,
        faults,
        unexpected_exits,
        clean_exits,
        seconds,
        timeline,
        skipped: None,
    }
}

fn skipped(
    kind: Kind,
    total: usize,
    expected: &std::collections::HashMap<String, usize>,
    why: &str,
) -> RunResult {
    eprintln!("chaos {}: skipped: {why}", kind.name());
    RunResult {
        scenario: kind.name(),
        events: total,
        poison: 0,
        dead_lettered: 0,
        dead_letter_kinds: BTreeMap::new(),
        outcome: Outcome {
            expected: expected.len(),
            ..Outcome::default()
        },
        faults: Vec::new(),
        unexpected_exits: 0,
        clean_exits: true,
        seconds: 0.0,
        timeline: Vec::new(),
        skipped: Some(why.to_owned()),
    }
}

/// The router DLQ's records (read_committed) and their `herald-error-kind` counts.
fn dead_letters(rig: &Rig, expected: usize) -> (usize, BTreeMap<String, usize>) {
    let records = tokio::task::block_in_place(|| {
        rig.kafka.read_topic(
            &rig.names.router_dlq(),
            Isolation::ReadCommitted,
            expected,
            Duration::from_secs(60),
        )
    });
    let mut kinds = BTreeMap::new();
    for record in &records {
        let kind = record
            .headers
            .iter()
            .find(|(k, _)| k == "herald-error-kind")
            .and_then(|(_, v)| v.as_deref())
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_else(|| "(none)".to_owned());
        *kinds.entry(kind).or_default() += 1;
    }
    (records.len(), kinds)
}

fn main() {
    let total: usize = std::env::var("HERALD_BENCH_CHAOS_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let seed: u64 = std::env::var("HERALD_BENCH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_261_204);
    let chosen: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let kinds: Vec<Kind> = [Kind::Kill, Kind::Broker, Kind::Receivers, Kind::Poison]
        .into_iter()
        .filter(|k| chosen.is_empty() || chosen.iter().any(|c| c == k.name()))
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let results: Vec<RunResult> = runtime.block_on(async {
        let mut results = Vec::new();
        for kind in kinds {
            results.push(run(kind, total, seed).await);
        }
        results
    });

    let mut report = Report::new(
        "chaos",
        &format!(
            "Chaos runs: {total} events each at {RATE}/s, real broker, herald router + 2 herald deliver workers (seed {seed})"
        ),
    );
    let mut failures = Vec::new();
    for r in &results {
        let o = &r.outcome;
        if let Some(why) = &r.skipped {
            report.row(format!("{}: skipped", r.scenario), why.clone(), "");
            continue;
        }
        let recoveries: Vec<String> = r
            .faults
            .iter()
            .map(|f| {
                f.recovery_s
                    .map_or("drained".to_owned(), |s| format!("{s:.1}"))
            })
            .collect();
        report.row(
            format!("{}: notifications expected / delivered", r.scenario),
            format!("{} / {}", o.expected, o.delivered),
            "",
        );
        report.row(format!("{}: lost", r.scenario), o.lost.to_string(), "0");
        report.row(
            format!(
                "{}: duplicate deliveries (with another webhook-id)",
                r.scenario
            ),
            format!(
                "{} ({})",
                o.duplicate_deliveries, o.duplicates_with_another_id
            ),
            "any (0)",
        );
        report.row(
            format!(
                "{}: duplicate Notification records, read_committed",
                r.scenario
            ),
            format!(
                "{} of {}",
                o.duplicate_notification_records, o.notification_records
            ),
            "0",
        );
        if !r.faults.is_empty() {
            report.row(
                format!("{}: faults / recovery after each (s)", r.scenario),
                format!("{}: {}", r.faults.len(), recoveries.join(", ")),
                "",
            );
        }
        if r.poison > 0 {
            report.row(
                format!("{}: poison records / in the router DLQ", r.scenario),
                format!(
                    "{} / {} {:?}",
                    r.poison, r.dead_lettered, r.dead_letter_kinds
                ),
                "equal",
            );
        }
        report.row(
            format!(
                "{}: unexpected process exits; clean SIGTERM exits",
                r.scenario
            ),
            format!(
                "{}; {}",
                r.unexpected_exits,
                if r.clean_exits { "yes" } else { "no" }
            ),
            "",
        );
        report.row(
            format!("{}: duration (s)", r.scenario),
            format!("{:.0}", r.seconds),
            "",
        );
        if r.faults.is_empty() && matches!(r.scenario, "kill" | "broker" | "receivers") {
            failures.push(format!(
                "{}: the run ended before its fault could be injected; raise HERALD_BENCH_CHAOS_EVENTS",
                r.scenario
            ));
        }
        if o.lost > 0 || o.unexpected > 0 {
            failures.push(format!(
                "{}: {} lost, {} unexpected",
                r.scenario, o.lost, o.unexpected
            ));
        }
        if o.duplicate_notification_records > 0 || o.duplicates_with_another_id > 0 {
            failures.push(format!(
                "{}: {} duplicate Notification records, {} redeliveries under another id",
                r.scenario, o.duplicate_notification_records, o.duplicates_with_another_id
            ));
        }
        if r.poison != r.dead_lettered {
            failures.push(format!(
                "{}: {} poison records, {} dead letters",
                r.scenario, r.poison, r.dead_lettered
            ));
        }
    }
    let series: Vec<(String, Vec<(f64, f64)>)> = results
        .iter()
        .filter(|r| r.skipped.is_none())
        .map(|r| {
            (
                r.scenario.to_owned(),
                r.timeline
                    .iter()
                    .enumerate()
                    .map(|(s, n)| (s as f64, *n as f64))
                    .collect(),
            )
        })
        .collect();
    report.lines(
        "timeline",
        "New deliveries per second during each chaos run",
        ("seconds since start", "deliveries/s"),
        &series,
    );
    report.field(
        "runs",
        serde_json::to_value(&results).expect("serializable"),
    );
    report.field("failures", serde_json::json!(failures));
    report.finish();
    assert!(failures.is_empty(), "chaos runs failed: {failures:#?}");
}
