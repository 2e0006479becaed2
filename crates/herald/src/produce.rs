//! `herald produce`: JSON events in, Avro records with CloudEvents headers out.

use std::io::BufRead;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use herald_contract::subjects::event_domain;
use herald_contract::{Catalog, RegistryClient, RegistryConfig};
use herald_kafka::KafkaConfig;
use herald_producer::{EventProducer, OutgoingEvent};
use serde_json::Value as Json;

use crate::Endpoints;
use crate::schemas::Strategy;

#[derive(Debug, clap::Args)]
pub(crate) struct ProduceArgs {
    #[command(flatten)]
    endpoints: Endpoints,
    /// The topic; `events.<domain of the type>` when unset.
    #[arg(long)]
    topic: Option<String>,
    /// The event type of `--data` (and of every `--file` line that names none).
    #[arg(long = "type")]
    event_type: Option<String>,
    /// One event's data as JSON.
    #[arg(long, conflicts_with = "file")]
    data: Option<String>,
    /// A file of events, one JSON object a line: the data itself (with `--type`), or
    /// `{"type": …, "data": {…}, "key": …, "id": …}`.
    #[arg(long)]
    file: Option<PathBuf>,
    /// The record key; by default the data's `<domain>_id` field (e.g. `order_id`).
    #[arg(long)]
    key: Option<String>,
    /// `ce_tenant`.
    #[arg(long)]
    tenant: Option<String>,
    /// `ce_recipient`, for point-to-point events.
    #[arg(long)]
    recipient: Option<String>,
    /// `ce_broadcast`: announce to every app with a subscription on this channel (`*`: on
    /// every channel).
    #[arg(long)]
    broadcast: Option<String>,
    /// `traceparent`; a new trace per event when unset.
    #[arg(long)]
    traceparent: Option<String>,
    /// `ce_source`.
    #[arg(long, default_value = "/herald/cli")]
    source: String,
    /// Subject naming the schemas were registered with.
    #[arg(long, value_enum, default_value_t = Strategy::Topic)]
    strategy: Strategy,
    /// The catalogue folder (needed for `--strategy record`).
    #[arg(long, default_value = "schemas")]
    schemas: PathBuf,
}

/// One event read from the arguments or a file line.
struct Line {
    event_type: String,
    data: Json,
    key: Option<String>,
    id: Option<String>,
}

pub(crate) async fn run(args: ProduceArgs) -> anyhow::Result<()> {
    let lines = read_events(&args)?;
    let catalog = match args.strategy {
        Strategy::Record => Catalog::load_dir(&args.schemas)?,
        Strategy::Topic => Catalog::default(),
    };
    let registry = RegistryClient::new(&RegistryConfig::new(&args.endpoints.registry))?;
    let producer = EventProducer::new(
        &KafkaConfig::new(&args.endpoints.brokers),
        registry,
        Arc::new(catalog),
        args.strategy.into(),
        &args.source,
    )?;
    for (number, line) in lines.iter().enumerate() {
        let key = line
            .key
            .clone()
            .or_else(|| default_key(&line.event_type, &line.data));
        let mut event = OutgoingEvent::new(&line.event_type, &line.data);
        event.topic = args.topic.clone();
        event.key = key;
        event.id = line.id.clone();
        event.tenant = args.tenant.clone();
        event.recipient = args.recipient.clone();
        event.broadcast = args.broadcast.clone();
        event.traceparent = args.traceparent.clone();
        let produced = producer
            .produce(event)
            .await
            .with_context(|| format!("event {} ({})", number + 1, line.event_type))?;
        println!(
            "{}\t{}[{}]@{}\tschema {}",
            produced.id,
            produced.topic,
            produced.landed.partition,
            produced.landed.offset,
            produced
                .schema_id
                .map_or_else(|| "single-object".to_owned(), |id| id.to_string())
        );
    }
    Ok(())
}

fn read_events(args: &ProduceArgs) -> anyhow::Result<Vec<Line>> {
    if let Some(data) = &args.data {
        let event_type = args.event_type.clone().context("--data needs --type")?;
        let data = serde_json::from_str(data).context("--data is not valid JSON")?;
        return Ok(vec![Line {
            event_type,
            data,
            key: args.key.clone(),
            id: None,
        }]);
    }
    let Some(path) = &args.file else {
        bail!("give one event with --data or a file of events with --file");
    };
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut lines = Vec::new();
    for (number, text) in std::io::BufReader::new(file).lines().enumerate() {
        let text = text.with_context(|| format!("reading {}", path.display()))?;
        if text.trim().is_empty() {
            continue;
        }
        let at = || format!("{}:{}", path.display(), number + 1);
        let json: Json =
            serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", at()))?;
        lines.push(match &args.event_type {
            Some(event_type) => Line {
                event_type: event_type.clone(),
                data: json,
                key: args.key.clone(),
                id: None,
            },
            None => {
                let field = |name: &str| json.get(name).and_then(Json::as_str).map(str::to_owned);
                Line {
                    event_type: field("type")
                        .with_context(|| format!("{}: no \"type\" and no --type", at()))?,
                    key: field("key").or_else(|| args.key.clone()),
                    id: field("id"),
                    data: json
                        .get("data")
                        .cloned()
                        .with_context(|| format!("{}: no \"data\"", at()))?,
                }
            }
        });
    }
    Ok(lines)
}

/// The entity id the event is about, so one entity's events share a partition.
fn default_key(event_type: &str, data: &Json) -> Option<String> {
    data.get(format!("{}_id", event_domain(event_type)))
        .and_then(Json::as_str)
        .map(str::to_owned)
}
