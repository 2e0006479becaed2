//! Topic administration and cluster look-ups.
//!
//! Creation is idempotent (an existing topic is reported, not an error) and waits until every
//! partition has a leader, because a producer that races a fresh topic's metadata gets
//! `UNKNOWN_TOPIC_OR_PART` and tests that race it flake.

use std::time::{Duration, Instant};

use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, ConfigSource, NewPartitions, NewTopic,
    ResourceSpecifier, TopicReplication,
};
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

/// One step of a plan that brings the cluster's topics to their specs
/// ([`Admin::plan_topics`], [`Admin::apply_plan`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicChange {
    /// The topic is missing: create it.
    Create(TopicSpec),
    /// The topic has fewer partitions than wanted: add them.
    AddPartitions {
        /// The topic.
        topic: String,
        /// Partitions now.
        from: i32,
        /// Partitions wanted.
        to: i32,
    },
    /// Topic configs differ from the spec: set them (other topic-level overrides are kept).
    SetConfigs {
        /// The topic.
        topic: String,
        /// `(key, current value, wanted value)`.
        changes: Vec<(String, Option<String>, String)>,
        /// The topic-level overrides that stay as they are.
        kept: Vec<(String, String)>,
    },
    /// More partitions than wanted: Kafka cannot remove partitions, so it is left alone.
    KeepPartitions {
        /// The topic.
        topic: String,
        /// Partitions now.
        has: i32,
        /// Partitions wanted.
        wanted: i32,
    },
    /// Nothing to do.
    UpToDate(String),
}

impl std::fmt::Display for TopicChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Create(spec) => {
                write!(
                    f,
                    "create\t{}\tpartitions={} replication={}",
                    spec.name, spec.partitions, spec.replication
                )?;
                for (key, value) in &spec.configs {
                    write!(f, " {key}={value}")?;
                }
                Ok(())
            }
            Self::AddPartitions { topic, from, to } => {
                write!(f, "partitions\t{topic}\t{from} -> {to}")
            }
            Self::SetConfigs { topic, changes, .. } => {
                write!(f, "configs\t{topic}\t")?;
                let parts: Vec<String> = changes
                    .iter()
                    .map(|(k, from, to)| {
                        format!("{k}: {} -> {to}", from.as_deref().unwrap_or("(default)"))
                    })
                    .collect();
                write!(f, "{}", parts.join(", "))
            }
            Self::KeepPartitions { topic, has, wanted } => write!(
                f,
                "keep\t{topic}\thas {has} partitions, {wanted} wanted: Kafka cannot remove partitions"
            ),
            Self::UpToDate(topic) => write!(f, "ok\t{topic}"),
        }
    }
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
        // Topics that exist are not asked for again: fewer requests, and a cluster without the
        // CreateTopics API (librdkafka's mock cluster in `herald dev`, whose topics are created
        // beforehand) works too.
        let metadata = self.client.inner().fetch_metadata(None, ADMIN_TIMEOUT)?;
        let existing: std::collections::HashSet<&str> = metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none() && !t.partitions().is_empty())
            .map(|t| t.name())
            .collect();
        let missing: Vec<&TopicSpec> = specs
            .iter()
            .filter(|spec| !existing.contains(spec.name.as_str()))
            .collect();
        let mut created = std::collections::HashSet::new();
        if !missing.is_empty() {
            let new_topics: Vec<NewTopic<'_>> = missing
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
            for result in self.client.create_topics(&new_topics, &options).await? {
                match result {
                    Ok(name) => {
                        created.insert(name);
                    }
                    Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                    Err((topic, code)) => {
                        return Err(KafkaError::Topic {
                            operation: "create",
                            topic,
                            code,
                        });
                    }
                }
            }
        }
        for spec in specs {
            self.wait_for_leaders(&spec.name, ADMIN_TIMEOUT)?;
        }
        Ok(specs
            .iter()
            .map(|spec| match created.contains(&spec.name) {
                true => TopicOutcome::Created(spec.name.clone()),
                false => TopicOutcome::AlreadyExisted(spec.name.clone()),
            })
            .collect())
    }

    /// What it takes to bring the cluster's topics to `specs`: missing topics, missing
    /// partitions, topic configs that differ. Reads only.
    pub async fn plan_topics(&self, specs: &[TopicSpec]) -> Result<Vec<TopicChange>, KafkaError> {
        let metadata = self.client.inner().fetch_metadata(None, ADMIN_TIMEOUT)?;
        let partitions: std::collections::HashMap<&str, i32> = metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none())
            .map(|t| (t.name(), t.partitions().len() as i32))
            .collect();
        let options = AdminOptions::new().request_timeout(Some(ADMIN_TIMEOUT));
        let mut plan = Vec::new();
        for spec in specs {
            let Some(&has) = partitions.get(spec.name.as_str()) else {
                plan.push(TopicChange::Create(spec.clone()));
                continue;
            };
            let mut changed = false;
            if has < spec.partitions {
                plan.push(TopicChange::AddPartitions {
                    topic: spec.name.clone(),
                    from: has,
                    to: spec.partitions,
                });
                changed = true;
            } else if has > spec.partitions {
                plan.push(TopicChange::KeepPartitions {
                    topic: spec.name.clone(),
                    has,
                    wanted: spec.partitions,
                });
                changed = true;
            }
            let described = self
                .client
                .describe_configs(&[ResourceSpecifier::Topic(&spec.name)], &options)
                .await?;
            let resource = described
                .into_iter()
                .next()
                .ok_or_else(|| KafkaError::Invalid(format!("no configs of {}", spec.name)))?
                .map_err(|code| KafkaError::Topic {
                    operation: "describe configs",
                    topic: spec.name.clone(),
                    code,
                })?;
            // Topic-level overrides: an alteration replaces all of them, so they are kept.
            let overrides: Vec<(String, String)> = resource
                .entries
                .iter()
                .filter(|e| e.source == ConfigSource::DynamicTopic && !e.is_read_only)
                .filter_map(|e| e.value.clone().map(|v| (e.name.clone(), v)))
                .collect();
            let current = |key: &str| {
                resource
                    .entries
                    .iter()
                    .find(|e| e.name == key)
                    .and_then(|e| e.value.clone())
            };
            let changes: Vec<(String, Option<String>, String)> = spec
                .configs
                .iter()
                .filter(|(key, value)| current(key).as_deref() != Some(value.as_str()))
                .map(|(key, value)| (key.clone(), current(key), value.clone()))
                .collect();
            if !changes.is_empty() {
                let kept = overrides
                    .into_iter()
                    .filter(|(key, _)| !changes.iter().any(|(k, _, _)| k == key))
                    .collect();
                plan.push(TopicChange::SetConfigs {
                    topic: spec.name.clone(),
                    changes,
                    kept,
                });
                changed = true;
            }
            if !changed {
                plan.push(TopicChange::UpToDate(spec.name.clone()));
            }
        }
        Ok(plan)
    }

    /// Carries out a plan from [`Admin::plan_topics`].
    pub async fn apply_plan(&self, plan: &[TopicChange]) -> Result<(), KafkaError> {
        let options = AdminOptions::new().operation_timeout(Some(ADMIN_TIMEOUT));
        for change in plan {
            match change {
                TopicChange::Create(spec) => {
                    self.ensure_topics(std::slice::from_ref(spec)).await?;
                }
                TopicChange::AddPartitions { topic, to, .. } => {
                    let request = NewPartitions::new(topic, *to as usize);
                    for result in self.client.create_partitions(&[request], &options).await? {
                        result.map_err(|(topic, code)| KafkaError::Topic {
                            operation: "add partitions",
                            topic,
                            code,
                        })?;
                    }
                    self.wait_for_leaders(topic, ADMIN_TIMEOUT)?;
                }
                TopicChange::SetConfigs {
                    topic,
                    changes,
                    kept,
                } => {
                    let mut alter = AlterConfig::new(ResourceSpecifier::Topic(topic));
                    for (key, value) in kept {
                        alter = alter.set(key, value);
                    }
                    for (key, _, value) in changes {
                        alter = alter.set(key, value);
                    }
                    for result in self.client.alter_configs(&[alter], &options).await? {
                        result.map_err(|(_, code)| KafkaError::Topic {
                            operation: "alter configs",
                            topic: topic.clone(),
                            code,
                        })?;
                    }
                }
                TopicChange::KeepPartitions { .. } | TopicChange::UpToDate(_) => {}
            }
        }
        Ok(())
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
