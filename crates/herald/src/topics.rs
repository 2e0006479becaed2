//! `herald topics create`: creates topics (until `herald topics apply` manages all of Herald's).

use anyhow::Context;
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
    }
}
