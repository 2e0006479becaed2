//! `herald router`: runs the router until SIGINT or SIGTERM.

use std::path::PathBuf;

use anyhow::Context;
use herald_router::{Router, RouterConfig};

#[derive(Debug, clap::Args)]
pub(crate) struct RouterArgs {
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
    /// Prefix of Herald's topics and consumer groups.
    #[arg(long, env = "HERALD_PREFIX", default_value = "herald")]
    prefix: String,
    /// Event topics to consume (repeatable); a name starting with `^` is a regular expression.
    #[arg(long = "topics", default_value = r"^events\..*")]
    topics: Vec<String>,
    /// Stable id of this instance, part of its transactional.id; give each replica its own
    /// (e.g. the pod name of a StatefulSet) and keep it across restarts.
    #[arg(long, env = "HERALD_INSTANCE_ID", default_value = "0")]
    instance_id: String,
    /// A folder of reader schemas; the schemas built into the binary otherwise.
    #[arg(long)]
    schemas: Option<PathBuf>,
    /// The most events one transaction covers.
    #[arg(long, default_value_t = herald_kafka::DEFAULT_MAX_BATCH_RECORDS)]
    max_batch: usize,
    /// Partitions of the notify and DLQ topics created when missing.
    #[arg(long, default_value_t = 6)]
    partitions: i32,
    /// Serves the router's Prometheus metrics at `http://<addr>/metrics`.
    #[arg(long, env = "HERALD_METRICS_ADDR")]
    metrics_addr: Option<std::net::SocketAddr>,
}

pub(crate) fn run(args: RouterArgs, runtime: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    let mut config = RouterConfig::new(&args.brokers);
    config.topic_prefix = args.prefix;
    config.source_topics = args.topics;
    config.registry_url = Some(args.registry);
    config.schemas_dir = args.schemas;
    config.instance_id = args.instance_id;
    config.max_batch_records = args.max_batch;
    config.notify_partitions = args.partitions;
    let router = runtime
        .block_on(Router::build(config))
        .context("starting the router")?;
    if let Some(address) = args.metrics_addr {
        crate::metrics_server::serve(runtime, address, router.metrics_registry().clone())?;
    }
    let stop = crate::stop_on_signal(
        runtime,
        Some("stopping: finishing the transaction in flight"),
    );
    let handle = runtime.handle().clone();
    eprintln!("herald router: running (Ctrl-C to stop)");
    router
        .run_until_stopped(stop, handle)
        .context("the router stopped on an error")
}
