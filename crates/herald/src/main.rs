//! `herald`: the one binary of Herald. Each subcommand wires library crates together and holds
//! no logic of its own, so that everything it does is tested in the crates.
//!
//! # Layout
//! - `main.rs`: argument parsing and dispatch.
//! - `config.rs`: `--config herald.toml` and `HERALD__SECTION__KEY` settings.
//! - `telemetry.rs`: logs (text or JSON) and optional OTLP span export.
//! - `schemas.rs`: `herald schemas register`.
//! - `produce.rs`: `herald produce`.
//! - `read.rs`: `herald read`.
//! - `topics.rs`: `herald topics create | apply`.
//! - `router.rs`: `herald router`.
//! - `replay.rs`: `herald replay` (a window routed again or exported to a file).
//! - `subscriptions.rs`: `herald subscriptions create | list | delete`.
//! - `deliver.rs`: `herald deliver` and `herald dlq list | redrive`.
//! - `apps.rs`: `herald apps create`.
//! - `admin.rs`: `herald admin` (the admin API and console).
//! - `dev.rs`: `herald dev` (everything in one process on an embedded broker).
//! - `inbox.rs`: `herald inbox` (the pull inbox's HTTP API).
//! - `metrics_server.rs`: `GET /metrics` for `--metrics-addr`.

mod admin;
mod apps;
mod config;
mod deliver;
mod dev;
mod inbox;
mod metrics_server;
mod produce;
mod read;
mod replay;
mod router;
mod schemas;
mod subscriptions;
mod telemetry;
mod topics;

use std::time::Duration;

/// mimalloc rather than glibc's malloc: Herald's hot paths make many small short-lived
/// allocations (Avro values, JSON, records), where malloc/free were a third of the profile.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::Context;
use clap::{Parser, Subcommand};

/// Herald: a Kafka-native event notification pipeline.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// A TOML configuration file (see deploy/herald.example.toml); `HERALD__SECTION__KEY`
    /// variables override it, flags on the command line override both.
    #[arg(long, global = true, env = "HERALD_CONFIG")]
    config: Option<std::path::PathBuf>,
    /// Log format on stderr: `text` for people, `json` (one object a line, with the span
    /// fields) for log pipelines. The level comes from `RUST_LOG` (default `warn`).
    #[arg(long, global = true, env = "HERALD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Exports OpenTelemetry spans (a delivery service's attempts, children of the producer's
    /// trace) over OTLP/HTTP with JSON to this collector base URL (`/v1/traces` is appended).
    #[arg(long, global = true, env = "HERALD_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    #[command(subcommand)]
    command: Command,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// JSON lines.
    Json,
}

/// Where the cluster and the registry are; shared by the subcommands that need them.
#[derive(Debug, clap::Args)]
struct Endpoints {
    /// Kafka bootstrap servers.
    #[arg(long, env = "HERALD_BROKERS", default_value = "127.0.0.1:9092")]
    brokers: String,
    /// Base URL of the schema registry's Confluent-compatible API.
    #[arg(
        long,
        env = "HERALD_REGISTRY",
        default_value = "http://127.0.0.1:8081/apis/ccompat/v7"
    )]
    registry: String,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Checks that the Kafka cluster answers and prints its brokers.
    Check {
        /// Kafka bootstrap servers.
        #[arg(long, env = "HERALD_BROKERS", default_value = "127.0.0.1:9092")]
        brokers: String,
        /// How long to wait for the cluster's answer, in seconds.
        #[arg(long, default_value_t = 10)]
        timeout_secs: u64,
    },
    /// Manages the Avro schemas in the schema registry.
    Schemas {
        #[command(subcommand)]
        command: schemas::SchemasCommand,
    },
    /// Encodes JSON events to Avro with their registered schema and produces them with
    /// CloudEvents headers and a traceparent.
    Produce(produce::ProduceArgs),
    /// Prints a topic's records decoded to JSON lines, from the beginning to the current end.
    Read(read::ReadArgs),
    /// Runs the router: event topics to per-channel notification topics, exactly once.
    Router(Box<router::RouterArgs>),
    /// Manages subscriptions in the compacted topic `herald.subscriptions`.
    Subscriptions {
        #[command(subcommand)]
        command: subscriptions::SubscriptionsCommand,
    },
    /// Routes a time window of an event topic again (one subscription or all), or exports it
    /// to an .ndjson, .avro or .parquet file.
    Replay(Box<replay::ReplayArgs>),
    /// Runs a channel's delivery service: notifications to receivers, with retry tiers and
    /// a dead-letter topic.
    Deliver(Box<deliver::DeliverArgs>),
    /// Lists and redrives a channel's dead letters.
    Dlq {
        #[command(subcommand)]
        command: deliver::DlqCommand,
    },
    /// Serves the pull inbox: apps fetch, acknowledge and stream their `inbox` notifications
    /// over HTTP with their API key.
    Inbox(Box<inbox::InboxArgs>),
    /// Manages apps and their signing secrets.
    Apps {
        #[command(subcommand)]
        command: apps::AppsCommand,
    },
    /// Serves the admin API and console: apps, subscriptions, the event catalogue, the
    /// delivery log, dead letters, event ingest and replays.
    Admin(Box<admin::AdminArgs>),
    /// Runs Herald in one process to try it: an embedded broker, the router, the webhook
    /// delivery service, the admin API and console, an echo receiver and demo events.
    Dev(Box<dev::DevArgs>),
    /// Prints configuration help: `herald config example` prints a configuration file with
    /// every setting of every service, commented out with its default.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Manages topics.
    Topics {
        #[command(subcommand)]
        command: topics::TopicsCommand,
    },
}

impl Command {
    /// The command's name, for the service name in traces.
    fn name(&self) -> &'static str {
        match self {
            Self::Router(_) => "router",
            Self::Deliver(_) => "deliver",
            Self::Inbox(_) => "inbox",
            Self::Admin(_) => "admin",
            Self::Dev(_) => "dev",
            Self::Replay(_) => "replay",
            _ => "cli",
        }
    }
}

/// `herald config …`.
#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Prints the example configuration file (deploy/herald.example.toml is its output).
    Example,
}

fn main() -> anyhow::Result<()> {
    use clap::{CommandFactory, FromArgMatches};
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let path = config::path_from(&args);
    let args = config::apply(args, path.as_deref(), &Cli::command())?;
    let cli = match Cli::from_arg_matches(&Cli::command().get_matches_from(args)) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    let service = format!("herald-{}", cli.command.name());
    let telemetry = telemetry::init(cli.log_format, cli.otlp_endpoint.as_deref(), &service)?;
    let result = run(cli.command);
    telemetry.shutdown();
    result
}

fn run(command: Command) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    match command {
        Command::Check {
            brokers,
            timeout_secs,
        } => check(&brokers, Duration::from_secs(timeout_secs)),
        Command::Schemas { command } => runtime.block_on(schemas::run(command)),
        Command::Produce(args) => runtime.block_on(produce::run(args)),
        Command::Read(args) => runtime.block_on(read::run(args)),
        Command::Topics { command } => runtime.block_on(topics::run(command)),
        Command::Router(args) => router::run(*args, &runtime),
        Command::Replay(args) => replay::run(*args, &runtime),
        Command::Subscriptions { command } => runtime.block_on(subscriptions::run(command)),
        Command::Deliver(args) => deliver::run(*args, &runtime),
        Command::Dlq { command } => runtime.block_on(deliver::dlq(command)),
        Command::Inbox(args) => inbox::run(*args, &runtime),
        Command::Apps { command } => runtime.block_on(apps::run(command)),
        Command::Admin(args) => admin::run(*args, &runtime),
        Command::Dev(args) => dev::run(*args, &runtime),
        Command::Config {
            command: ConfigCommand::Example,
        } => {
            print!(
                "{}",
                config::example(&<Cli as clap::CommandFactory>::command())
            );
            Ok(())
        }
    }
}

/// A stop flag set when SIGINT or SIGTERM arrives (logging `message` then, if given): what
/// every long-running command hands its service.
pub(crate) fn stop_on_signal(
    runtime: &tokio::runtime::Runtime,
    message: Option<&'static str>,
) -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let signalled = stop.clone();
    runtime.spawn(async move {
        shutdown_signal().await;
        if let Some(message) = message {
            tracing::info!("{message}");
        }
        signalled.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    stop
}

/// Resolves on SIGINT or SIGTERM, the signals that ask a service to drain and stop.
pub(crate) async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

/// Parses an RFC 3339 time argument to epoch milliseconds, with a message that shows the form.
pub(crate) fn parse_time(text: &str) -> Result<i64, String> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|e| format!("{text:?} is not an RFC 3339 time such as 2026-12-04T02:00:00Z: {e}"))
}

fn check(brokers: &str, timeout: Duration) -> anyhow::Result<()> {
    let admin = herald_kafka::Admin::new(&herald_kafka::KafkaConfig::new(brokers))?;
    let info = admin
        .cluster_info(timeout)
        .with_context(|| format!("the Kafka cluster at {brokers} did not answer"))?;
    println!("kafka at {brokers}: {} topic(s)", info.topic_count);
    for (id, address) in info.brokers {
        println!("  broker {id} at {address}");
    }
    Ok(())
}
