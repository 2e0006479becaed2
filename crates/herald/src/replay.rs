//! `herald replay`: a time window of an event topic routed again (to one subscription or to
//! all) or exported to a file. Bounded by the window; Ctrl-C stops it with what was read
//! written (a partial file is still a valid file) and says how far it got.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use herald_core::filter::Filter;
use herald_core::subscription::EventTypePattern;
use herald_replay::export::{self, ExportRequest};
use herald_router::replay::ReplayRequest;
use herald_router::route::EventGate;
use herald_router::{Router, RouterConfig};

#[derive(Debug, clap::Args)]
pub(crate) struct ReplayArgs {
    #[command(flatten)]
    endpoints: crate::Endpoints,
    /// Prefix of Herald's topics and consumer groups.
    #[arg(long, env = "HERALD_PREFIX", default_value = "herald")]
    prefix: String,
    /// A folder of reader schemas; the schemas built into the binary otherwise.
    #[arg(long)]
    schemas: Option<PathBuf>,
    /// The event topic to read.
    #[arg(long)]
    topic: String,
    /// The window's start (RFC 3339, e.g. 2026-12-04T02:00:00Z), included.
    #[arg(long, value_parser = crate::parse_time)]
    from: i64,
    /// The window's end (RFC 3339), excluded.
    #[arg(long, value_parser = crate::parse_time)]
    to: i64,
    /// Only events whose type matches: `order.paid`, `order.*` or `*`.
    #[arg(long = "type", value_parser = EventTypePattern::parse)]
    event_type: Option<EventTypePattern>,
    /// Only events this CEL expression passes (as in subscription filters), e.g.
    /// `data.currency == "CNY"`.
    #[arg(long, value_parser = |s: &str| Filter::compile(s).map_err(|e| e.to_string()))]
    filter: Option<Filter>,
    #[command(flatten)]
    target: Target,
    /// With --subscription or --to-router: new notification ids (receivers will not treat
    /// the replay as repeats of the first delivery).
    #[arg(long)]
    fresh_ids: bool,
}

/// Where the window goes: exactly one of these.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
struct Target {
    /// Route the window again for this subscription only.
    #[arg(long)]
    subscription: Option<String>,
    /// Route the window again for every subscription.
    #[arg(long)]
    to_router: bool,
    /// Write the window's events to this file: .ndjson, .avro or .parquet.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Reports progress: a bar with rate and ETA on a terminal, a line every few seconds otherwise.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    last_line: Instant,
}

impl Progress {
    fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {pos}/{len} offsets  {per_sec}  ETA {eta}  {msg}",
                )
                .expect("a valid template"),
            );
            bar
        });
        Self {
            bar,
            last_line: Instant::now(),
        }
    }

    fn update(&mut self, read: u64, total: u64, message: String) {
        match &self.bar {
            Some(bar) => {
                bar.set_length(total);
                bar.set_position(read);
                bar.set_message(message);
            }
            None if self.last_line.elapsed() >= Duration::from_secs(2) => {
                self.last_line = Instant::now();
                eprintln!("replay: {read}/{total} offsets, {message}");
            }
            None => {}
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}

pub(crate) fn run(args: ReplayArgs, runtime: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    let mut config = RouterConfig::new(&args.endpoints.brokers);
    config.topic_prefix = args.prefix;
    config.registry_url = Some(args.endpoints.registry);
    config.schemas_dir = args.schemas;
    let gate = EventGate {
        types: args.event_type,
        filter: args.filter,
    };
    let stop = crate::stop_on_signal(runtime, None);
    let mut progress = Progress::new();
    let handle = runtime.handle().clone();
    if let Some(path) = args.target.out {
        let decoder = Router::decoder(&config)?;
        let request = ExportRequest {
            topic: args.topic,
            from_ms: args.from,
            to_ms: args.to,
            gate,
            path: path.clone(),
        };
        let done = export::export(&config.kafka, &decoder, &request, &stop, &handle, |p| {
            progress.update(p.read, p.total, format!("{} events written", p.written))
        })
        .with_context(|| format!("exporting to {}", path.display()))?;
        progress.finish();
        if let Some(first) = &done.first_skip {
            eprintln!(
                "replay: {} record(s) could not be exported; the first: {first}",
                done.skipped
            );
        }
        eprintln!(
            "replay: {} events written to {}; read {} of {} offsets{}",
            done.written,
            path.display(),
            done.read,
            done.total,
            if done.complete {
                ""
            } else {
                " (stopped before the window's end; the file holds what was read)"
            }
        );
        println!(
            "{}",
            serde_json::json!({
                "out": path, "written": done.written, "skipped": done.skipped,
                "read": done.read, "total": done.total, "complete": done.complete,
            })
        );
        return Ok(());
    }
    let request = ReplayRequest {
        topic: args.topic,
        from_ms: args.from,
        to_ms: args.to,
        gate,
        subscription: args.target.subscription,
        fresh_ids: args.fresh_ids,
    };
    let router = runtime
        .block_on(Router::build(config))
        .context("starting the router")?;
    let done = router
        .replay(&request, &stop, handle, |p| {
            progress.update(
                p.read,
                p.total,
                format!("{} notifications", p.notifications),
            )
        })
        .context("replaying")?;
    progress.finish();
    eprintln!(
        "replay: {} events read, {} notifications written, {} dead letters; read {} of {} offsets{}",
        done.events,
        done.notifications,
        done.dead_letters,
        done.read,
        done.total,
        if done.complete {
            ""
        } else {
            " (stopped before the window's end)"
        }
    );
    println!(
        "{}",
        serde_json::json!({
            "events": done.events, "notifications": done.notifications,
            "dead_letters": done.dead_letters, "read": done.read, "total": done.total,
            "complete": done.complete,
        })
    );
    Ok(())
}
