//! Which registry subject each catalogue schema is registered under, and registering them.
//!
//! TopicNameStrategy (the default) registers one subject per topic, `<topic>-value`: the event
//! records of one domain share a topic, so that subject holds their union; Herald's own records
//! go under the subjects of the topics that carry them. RecordNameStrategy registers every
//! record under its full name.

use std::collections::BTreeMap;

use herald_core::topics::{ChannelName, TopicNames};

use crate::catalog::Catalog;
use crate::registry::{RegistryClient, RegistryError};

/// How subjects are named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SubjectStrategy {
    /// `<topic>-value`.
    #[default]
    TopicName,
    /// The record's full name.
    RecordName,
}

/// One subject and the schema text to register under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectSchema {
    /// The subject.
    pub subject: String,
    /// The schema JSON.
    pub schema: String,
    /// The full names of the records it holds.
    pub records: Vec<String>,
}

/// The topic an event type is produced to: `events.<first segment of the type>`.
pub fn event_topic(event_type: &str) -> String {
    format!("events.{}", event_domain(event_type))
}

/// The domain of an event type: its first dot-separated segment.
pub fn event_domain(event_type: &str) -> &str {
    event_type.split('.').next().unwrap_or(event_type)
}

/// The subjects for `catalog` under `strategy`. Upstream event records are those whose full
/// name is not in Herald's namespace `dev.herald`; `event_topic_of` names the topic of a domain.
pub fn plan(
    catalog: &Catalog,
    strategy: SubjectStrategy,
    topics: &TopicNames,
    channels: &[ChannelName],
    event_topic_of: &dyn Fn(&str) -> String,
) -> Result<Vec<SubjectSchema>, String> {
    let mut plans = Vec::new();
    let mut domains: BTreeMap<&str, Vec<&crate::catalog::CatalogSchema>> = BTreeMap::new();
    for schema in catalog.schemas() {
        let single = |subject: String| SubjectSchema {
            subject,
            schema: schema.text.clone(),
            records: vec![schema.full_name.clone()],
        };
        if strategy == SubjectStrategy::RecordName {
            plans.push(single(schema.full_name.clone()));
            continue;
        }
        match schema.full_name.as_str() {
            "dev.herald.App" => plans.push(single(format!("{}-value", topics.apps()))),
            "dev.herald.Subscription" => {
                plans.push(single(format!("{}-value", topics.subscriptions())))
            }
            "dev.herald.DeliveryAttempt" => {
                plans.push(single(format!("{}-value", topics.attempts())))
            }
            "dev.herald.Notification" => {
                for channel in channels {
                    plans.push(single(format!("{}-value", topics.notify(channel))));
                }
            }
            name if name.starts_with("dev.herald.") => {
                return Err(format!("{name} has no topic under TopicNameStrategy"));
            }
            _ => domains
                .entry(event_domain(&schema.event_type))
                .or_default()
                .push(schema),
        }
    }
    for (domain, members) in domains {
        let branches = members
            .iter()
            .map(|m| {
                serde_json::from_str::<serde_json::Value>(&m.text)
                    .map_err(|e| format!("{}: {e}", m.path.display()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        plans.push(SubjectSchema {
            subject: format!("{}-value", event_topic_of(domain)),
            schema: serde_json::Value::Array(branches).to_string(),
            records: members.iter().map(|m| m.full_name.clone()).collect(),
        });
    }
    Ok(plans)
}

/// Registers every planned subject and returns `(subject, schema id)` in plan order.
pub async fn register(
    registry: &RegistryClient,
    plans: &[SubjectSchema],
) -> Result<Vec<(String, u32)>, RegistryError> {
    let mut registered = Vec::with_capacity(plans.len());
    for plan in plans {
        let id = registry.register(&plan.subject, &plan.schema).await?;
        registered.push((plan.subject.clone(), id));
    }
    Ok(registered)
}
