//! `herald schemas register`: puts the catalogue (`schemas/`) into the registry.

use std::path::PathBuf;

use anyhow::Context;
use herald_contract::subjects::{self, SubjectStrategy};
use herald_contract::{Catalog, RegistryClient, RegistryConfig};
use herald_core::topics::{ChannelName, TopicNames};

/// The channels whose notification topics get a subject by default.
const DEFAULT_CHANNELS: &str = "webhook,email,sms,wechat,feishu,dingtalk,wecom,slack,http,inbox";

#[derive(Debug, clap::Subcommand)]
pub(crate) enum SchemasCommand {
    /// Registers every schema of the catalogue and prints each subject with its schema id.
    Register {
        /// The catalogue folder (`*.avsc`, searched recursively).
        #[arg(long, default_value = "schemas")]
        dir: PathBuf,
        /// Base URL of the schema registry's Confluent-compatible API.
        #[arg(
            long,
            env = "HERALD_REGISTRY",
            default_value = "http://127.0.0.1:8081/apis/ccompat/v7"
        )]
        registry: String,
        /// Subject naming: `topic` (`<topic>-value`, event records of one domain as a union)
        /// or `record` (each record under its full name).
        #[arg(long, value_enum, default_value_t = Strategy::Topic)]
        strategy: Strategy,
        /// Prefix of Herald's own topics.
        #[arg(long, default_value = "herald")]
        prefix: String,
        /// Prepended to upstream event topics: `<events-prefix>events.<domain>`.
        #[arg(long, default_value = "")]
        events_prefix: String,
        /// Channels whose `<prefix>.notify.<channel>` topics get a Notification subject.
        #[arg(long, value_delimiter = ',', default_value = DEFAULT_CHANNELS)]
        channels: Vec<String>,
        /// Print the subjects and schemas without registering anything.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Subject naming strategies, as spelled on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Strategy {
    /// TopicNameStrategy.
    Topic,
    /// RecordNameStrategy.
    Record,
}

impl From<Strategy> for SubjectStrategy {
    fn from(strategy: Strategy) -> Self {
        match strategy {
            Strategy::Topic => SubjectStrategy::TopicName,
            Strategy::Record => SubjectStrategy::RecordName,
        }
    }
}

pub(crate) async fn run(command: SchemasCommand) -> anyhow::Result<()> {
    match command {
        SchemasCommand::Register {
            dir,
            registry,
            strategy,
            prefix,
            events_prefix,
            channels,
            dry_run,
        } => {
            let catalog = Catalog::load_dir(&dir)?;
            let topics = TopicNames::with_prefix(&prefix)?;
            let channels = channels
                .iter()
                .map(|c| ChannelName::parse(c))
                .collect::<Result<Vec<_>, _>>()?;
            let plans = subjects::plan(&catalog, strategy.into(), &topics, &channels, &|domain| {
                format!("{events_prefix}events.{domain}")
            })
            .map_err(anyhow::Error::msg)?;
            if dry_run {
                for plan in &plans {
                    println!("{}\t{}", plan.subject, plan.records.join(","));
                }
                return Ok(());
            }
            let client = RegistryClient::new(&RegistryConfig::new(&registry))?;
            let registered = subjects::register(&client, &plans)
                .await
                .with_context(|| format!("registering {} with {registry}", dir.display()))?;
            for (subject, id) in registered {
                println!("{subject}\tid {id}");
            }
            Ok(())
        }
    }
}
