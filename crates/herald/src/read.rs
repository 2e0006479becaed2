//! `herald read`: prints a topic's records decoded to JSON, one per line, from the beginning to
//! the current end. A record that does not decode is printed with its error, not skipped.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use herald_contract::decode::{Decoder, RawRecord};
use herald_contract::{Catalog, RegistryClient, RegistryConfig};
use herald_kafka::KafkaConfig;
use herald_kafka::reader::{Isolation, ReadOptions, read_from_beginning};
use serde_json::json;

use crate::Endpoints;

#[derive(Debug, clap::Args)]
pub(crate) struct ReadArgs {
    #[command(flatten)]
    endpoints: Endpoints,
    /// The topic.
    #[arg(long)]
    topic: String,
    /// Stop after this many records.
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// Stop waiting for the end of the topic (or for `--wait-for` records) after this many
    /// seconds.
    #[arg(long, default_value_t = 10)]
    timeout_secs: u64,
    /// Wait until at least this many records have arrived, for a topic a service is still
    /// writing to.
    #[arg(long, default_value_t = 0)]
    wait_for: usize,
    /// The catalogue folder: reader schemas and single-object writer schemas.
    #[arg(long, default_value = "schemas")]
    schemas: PathBuf,
}

pub(crate) async fn run(args: ReadArgs) -> anyhow::Result<()> {
    let catalog = if args.schemas.is_dir() {
        Catalog::load_dir(&args.schemas)?
    } else {
        Catalog::default()
    };
    let registry = RegistryClient::new(&RegistryConfig::new(&args.endpoints.registry))?;
    let decoder = Decoder::new(Some(registry), Arc::new(catalog));
    let config = KafkaConfig::new(&args.endpoints.brokers);
    let options = ReadOptions {
        isolation: Isolation::ReadCommitted,
        min_records: args.wait_for,
        max_records: args.limit,
        timeout: Duration::from_secs(args.timeout_secs),
    };
    let topic = args.topic.clone();
    // The reader blocks on librdkafka's poll, so it runs off the async runtime.
    let records = tokio::task::spawn_blocking(move || {
        read_from_beginning(
            &config,
            &format!("herald-read-{}", std::process::id()),
            &topic,
            options,
        )
    })
    .await?
    .with_context(|| format!("reading {}", args.topic))?;
    for record in &records {
        let raw = RawRecord {
            topic: &args.topic,
            partition: record.partition,
            offset: record.offset,
            timestamp_ms: record.timestamp_ms,
            payload: record.value.as_deref(),
            headers: record
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_deref().unwrap_or_default()))
                .collect(),
        };
        let key = record.key.as_deref().map(String::from_utf8_lossy);
        let line = match decoder.decode(&raw).await {
            Ok(event) => json!({
                "partition": record.partition, "offset": record.offset, "key": key,
                "type": event.event_type, "id": event.id, "source": event.source,
                "time_ms": event.time_ms, "tenant": event.tenant, "recipient": event.recipient,
                "traceparent": event.traceparent, "framing": event.framing.label(),
                "data": event.data_json(),
            }),
            Err(error) => json!({
                "partition": record.partition, "offset": record.offset, "key": key,
                "error_kind": error.kind.label(), "error": error.to_string(),
            }),
        };
        println!("{line}");
    }
    Ok(())
}
