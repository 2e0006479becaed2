//! `herald topics create | apply`: creates named topics, or brings every Herald topic to its
//! configured partitions and settings.

use anyhow::Context;
use std::collections::BTreeMap;

use herald_core::subscription::KNOWN_CHANNELS;
use herald_core::topics::{ChannelName, TopicNames};
use herald_kafka::{Admin, KafkaConfig, TopicOutcome, TopicSpec};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum TopicsCommand {
    /// Creates the named topics; existing ones are reported and left alone.
    Create {
        /// Kafka bootstrap servers.
        #[arg(long, env = "HERALD_BROKERS", default_value = "127.0.0.1:9092")]
        brokers: String,
        /// Partitions of each new topic.
        #[arg(long, default_value_t = 3)]
        partitions: i32,
        /// Replicas of each partition.
        #[arg(long, default_value_t = 1)]
        replication: i32,
        /// Topic names.
        #[arg(required = true)]
        topics: Vec<String>,
    },
    /// Creates or updates every Herald topic (notify, retry tiers, DLQs, attempts,
    /// subscriptions, apps, inbox acknowledgements) to the given partitions, replication and
    /// the design's retention and compaction; prints the plan. Idempotent.
    Apply {
        /// Kafka bootstrap servers.
        #[arg(long, env = "HERALD_BROKERS", default_value = "127.0.0.1:9092")]
        brokers: String,
        /// Prefix of Herald's topics.
        #[arg(long, env = "HERALD_PREFIX", default_value = "herald")]
        prefix: String,
        /// Partitions of the partitioned topics (compacted registries keep one).
        #[arg(long, default_value_t = 6)]
        partitions: i32,
        /// Replicas of each partition (for new topics).
        #[arg(long, default_value_t = 1)]
        replication: i32,
        /// `min.insync.replicas` of every topic, when set.
        #[arg(long)]
        min_isr: Option<u32>,
        /// Retry tier delays, milliseconds, as `herald deliver --retry-tiers-ms` (default: the
        /// default schedule's).
        #[arg(long, value_delimiter = ',')]
        retry_tiers_ms: Option<Vec<u64>>,
        /// Prints the plan without changing anything.
        #[arg(long)]
        dry_run: bool,
    },
}

pub(crate) async fn run(command: TopicsCommand) -> anyhow::Result<()> {
    match command {
        TopicsCommand::Create {
            brokers,
            partitions,
            replication,
            topics,
        } => {
            let admin = Admin::new(&KafkaConfig::new(&brokers))?;
            let specs: Vec<TopicSpec> = topics
                .iter()
                .map(|name| TopicSpec {
                    replication,
                    ..TopicSpec::new(name, partitions)
                })
                .collect();
            for outcome in admin
                .ensure_topics(&specs)
                .await
                .with_context(|| format!("creating topics on {brokers}"))?
            {
                match outcome {
                    TopicOutcome::Created(name) => println!("created\t{name}"),
                    TopicOutcome::AlreadyExisted(name) => println!("exists\t{name}"),
                }
            }
            Ok(())
        }
        TopicsCommand::Apply {
            brokers,
            prefix,
            partitions,
            replication,
            min_isr,
            retry_tiers_ms,
            dry_run,
        } => {
            let names = TopicNames::with_prefix(&prefix)?;
            let mut router = herald_router::RouterConfig::new(&brokers);
            router.topic_prefix = prefix.clone();
            router.notify_partitions = partitions;
            let mut specs: BTreeMap<String, TopicSpec> = BTreeMap::new();
            for spec in herald_router::herald_topics(&names, &router) {
                specs.insert(spec.name.clone(), spec);
            }
            for channel in KNOWN_CHANNELS.iter().filter(|c| **c != "inbox") {
                let mut deliver = herald_deliver::DeliverConfig::new(&brokers, channel);
                deliver.topic_prefix = prefix.clone();
                deliver.partitions = partitions;
                if let Some(tiers) = &retry_tiers_ms {
                    deliver.retry_tiers_ms = tiers.clone();
                }
                let channel = ChannelName::parse(channel)?;
                for spec in herald_deliver::topics(&names, &channel, &deliver) {
                    specs.insert(spec.name.clone(), spec);
                }
            }
            let acks = herald_deliver::inbox::acks_topic(&names);
            specs.insert(
                acks.clone(),
                TopicSpec::new(acks, partitions).config("cleanup.policy", "compact"),
            );
            let specs: Vec<TopicSpec> = specs
                .into_values()
                .map(|mut spec| {
                    spec.replication = replication;
                    if let Some(min_isr) = min_isr {
                        spec.configs
                            .push(("min.insync.replicas".into(), min_isr.to_string()));
                    }
                    spec
                })
                .collect();
            let admin = Admin::new(&KafkaConfig::new(&brokers))?;
            let plan = admin
                .plan_topics(&specs)
                .await
                .with_context(|| format!("reading the topics of {brokers}"))?;
            for change in &plan {
                println!("{change}");
            }
            if dry_run {
                eprintln!("dry run: nothing changed");
                return Ok(());
            }
            admin
                .apply_plan(&plan)
                .await
                .with_context(|| format!("applying the plan to {brokers}"))?;
            Ok(())
        }
    }
}
