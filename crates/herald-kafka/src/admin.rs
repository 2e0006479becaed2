//! Topic administration and cluster look-ups.
//!
//! Creation is idempotent (an existing topic is reported, not an error) and waits until every
//! partition has a leader, because a producer that races a fresh topic's metadata gets
//! `UNKNOWN_TOPIC_OR_PART` and tests that race it flake.

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use crate::{KafkaConfig, KafkaError};

/// How long admin requests and metadata waits may take before they fail.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);

/// A topic Herald wants to exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    /// The topic's name.
    pub name: String,
    /// How many partitions it has; parallelism is bounded by this.
    pub partitions: i32,
    /// How many replicas each partition has.
    pub replication: i32,
    /// Topic-level configs (`cleanup.policy`, `retention.ms`, …).
    pub configs: Vec<(String, String)>,
}

impl TopicSpec {
    /// A topic with `partitions` partitions, one replica and the broker's default configs.
    pub fn new(name: impl Into<String>, partitions: i32) -> Self {
        Self {
            name: name.into(),
            partitions,
            replication: 1,
            configs: Vec::new(),
        }
    }

    /// Adds a topic-level config.
    pub fn config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.configs.push((key.into(), value.into()));
        self
    }
}

/// What [`Admin::ensure_topics`] found or did for one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicOutcome {
    /// The topic did not exist and was created.
    Created(String),
    /// The topic existed already; its settings were left alone.
    AlreadyExisted(String),
}

/// What the cluster says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterInfo {
    /// `host:port` of every broker, by node id.
    pub brokers: Vec<(i32, String)>,
    /// How many topics the cluster holds, internal ones included.
    pub topic_count: usize,
}

/// An admin connection to the cluster.
pub struct Admin {
    config: KafkaConfig,
    client: AdminClient<DefaultClientContext>,
}

impl Admin {
    /// Connects lazily: librdkafka opens connections on the first request.
    pub fn new(config: &KafkaConfig) -> Result<Self, KafkaError> {
        let client = config.client_config().create()?;
        Ok(Self {
            config: config.clone(),
            client,
        })
    }

    /// Asks the cluster for its brokers and topics, blocking up to `timeout`.
    pub fn cluster_info(&self, timeout: Duration) -> Result<ClusterInfo, KafkaError> {
        let metadata = self.client.inner().fetch_metadata(None, timeout)?;
        Ok(ClusterInfo {
            brokers: metadata
                .brokers()
                .iter()
                .map(|b| (b.id(), format!("{}:{}", b.host(), b.port())))
                .collect(),
            topic_count: metadata.topics().len(),
        })
    }

    /// Creates the topics that do not exist yet, then waits until every partition of every
    /// topic has a leader.
    pub async fn ensure_topics(
        &self,
        specs: &[TopicSpec],
    ) -> Result<Vec<TopicOutcome>, KafkaError> {
        let new_topics: Vec<NewTopic<'_>> = specs
            .iter()
            .map(|spec| {
                spec.configs.iter().fold(
                    NewTopic::new(
                        &spec.name,
                        spec.partitions,
                        TopicReplication::Fixed(spec.replication),
                    ),
                    |topic, (key, value)| topic.set(key, value),
                )
            })
            .collect();
        let options = AdminOptions::new().operation_timeout(Some(ADMIN_TIMEOUT));
        let results = self.client.create_topics(&new_topics, &options).await?;
        let mut outcomes = Vec::with_capacity(results.len());
        for result in results {
            outcomes.push(match result {
                Ok(name) => TopicOutcome::Created(name),
                Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                    TopicOutcome::AlreadyExisted(name)
                }
                Err((topic, code)) => {
                    return Err(KafkaError::Topic {
                        operation: "create",
                        topic,
                        code,
                    });
                }
            });
        }
        for spec in specs {
            self.wait_for_leaders(&spec.name, ADMIN_TIMEOUT)?;
        }
        Ok(outcomes)
    }

    /// Deletes topics; a topic that does not exist is not an error.
    pub async fn delete_topics(&self, names: &[&str]) -> Result<(), KafkaError> {
        let options = AdminOptions::new().operation_timeout(Some(ADMIN_TIMEOUT));
        for result in self.client.delete_topics(names, &options).await? {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
                Err((topic, code)) => {
                    return Err(KafkaError::Topic {
                        operation: "delete",
                        topic,
                        code,
                    });
                }
            }
        }
        Ok(())
    }

    /// Blocks until `topic` exists and each of its partitions has a leader.
    pub fn wait_for_leaders(&self, topic: &str, timeout: Duration) -> Result<(), KafkaError> {
        let started = Instant::now();
        loop {
            let metadata = self.client.inner().fetch_metadata(Some(topic), timeout)?;
            let ready = metadata.topics().iter().any(|t| {
                t.name() == topic
                    && t.error().is_none()
                    && !t.partitions().is_empty()
                    && t.partitions()
                        .iter()
                        .all(|p| p.leader() >= 0 && p.error().is_none())
            });
            if ready {
                return Ok(());
            }
            if started.elapsed() > timeout {
                return Err(KafkaError::Timeout {
                    what: format!("leaders of topic {topic:?}"),
                    waited_ms: started.elapsed().as_millis(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The offsets `group` has committed for `topic`'s partitions `0..partitions`; `None` where
    /// the group has committed nothing. Blocks up to the admin timeout.
    ///
    /// This sends the same `OffsetFetch` request to the group coordinator that the Java admin
    /// client's `listConsumerGroupOffsets` sends; rust-rdkafka has no safe wrapper for
    /// librdkafka's `ListConsumerGroupOffsets`, so a consumer that never joins the group asks.
    pub fn committed_offsets(
        &self,
        group: &str,
        topic: &str,
        partitions: i32,
    ) -> Result<Vec<Option<i64>>, KafkaError> {
        let consumer: BaseConsumer = self
            .config
            .client_config()
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()?;
        let mut wanted = TopicPartitionList::new();
        for partition in 0..partitions {
            wanted.add_partition(topic, partition);
        }
        let committed = consumer.committed_offsets(wanted, ADMIN_TIMEOUT)?;
        Ok((0..partitions)
            .map(
                |partition| match committed.find_partition(topic, partition) {
                    Some(element) => match element.offset() {
                        Offset::Offset(offset) => Some(offset),
                        _ => None,
                    },
                    None => None,
                },
            )
            .collect())
    }
}
