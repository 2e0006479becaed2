//! `herald`: the one binary of Herald. Each subcommand wires library crates together and holds
//! no logic of its own, so that everything it does is tested in the crates.

use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

/// Herald: a Kafka-native event notification pipeline.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
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
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Check {
            brokers,
            timeout_secs,
        } => check(&brokers, Duration::from_secs(timeout_secs)),
    }
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
