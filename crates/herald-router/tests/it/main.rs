//! The router against the real broker and schema registry: every test gets its own topic
//! prefix, writes subscriptions and events, runs the router in-process and reads what it
//! wrote back with `isolation.level=read_committed`.

mod live_changes;
mod poison;
mod registry_outage;
mod workload;

use std::collections::BTreeMap;
use std::time::Duration;

use herald_core::Subscription;
use herald_core::topics::{ChannelName, TopicNames};
use herald_kafka::testkit::{Isolation, ReadRecord, TestKafka};
use herald_router::RouterConfig;
use herald_router::testkit::{self, GeneratedEvent};

/// How long a test waits for the router's output before it fails.
const READ_TIMEOUT: Duration = Duration::from_secs(120);

/// One test's topics and router settings.
struct Setup {
    kafka: TestKafka,
    names: TopicNames,
    events_topic: String,
}

impl Setup {
    /// A prefix of its own, an events topic with `partitions` partitions and the
    /// subscriptions topic, so that subscriptions can be written before the router starts.
    async fn new(test: &str, partitions: i32) -> Self {
        let kafka = TestKafka::new(test);
        let names = TopicNames::with_prefix(kafka.prefix()).expect("a valid prefix");
        let events_topic = kafka.create_topic("events.mixed", partitions).await;
        testkit::create_subscriptions_topic(&kafka, &names).await;
        Self {
            kafka,
            names,
            events_topic,
        }
    }

    /// Router settings for this test: its prefix, its events topic, the test registry.
    fn router_config(&self) -> RouterConfig {
        let mut config = RouterConfig::new(&herald_kafka::testkit::test_brokers());
        config.topic_prefix = self.kafka.prefix().to_owned();
        config.source_topics = vec![self.events_topic.clone()];
        config.registry_url = Some(herald_kafka::testkit::test_registry());
        config.notify_partitions = 3;
        config
    }

    /// Writes subscriptions as `herald subscriptions create` does.
    fn put_subscriptions(&self, subs: &[Subscription]) {
        testkit::put_subscriptions(&self.kafka, &self.names, subs);
    }

    /// Deletes a subscription with a tombstone.
    fn delete_subscription(&self, id: &str) {
        self.kafka.produce_bytes(
            &self.names.subscriptions(),
            [(id.as_bytes(), None, &[][..])],
        );
    }

    /// Produces generated events to the events topic, keyed by entity.
    fn produce_events(&self, events: &[GeneratedEvent]) {
        testkit::produce_events(&self.kafka, &self.events_topic, events);
    }

    /// The committed records of `channel`'s notify topic, waiting for at least `min`.
    fn notifications(&self, channel: &str, min: usize) -> Vec<ReadRecord> {
        let channel = ChannelName::parse(channel).expect("a channel name");
        self.kafka.read_topic(
            &self.names.notify(&channel),
            Isolation::ReadCommitted,
            min,
            READ_TIMEOUT,
        )
    }

    /// The committed records of the router's DLQ, waiting for at least `min`.
    fn dead_letters(&self, min: usize, timeout: Duration) -> Vec<ReadRecord> {
        self.kafka.read_topic(
            &self.names.router_dlq(),
            Isolation::ReadCommitted,
            min,
            timeout,
        )
    }
}

/// A webhook subscription of app `app-<i>` to `patterns`, for every tenant, without filter.
fn webhook(i: usize, patterns: &[&str]) -> Subscription {
    let mut sub = herald_router::testkit::subscriptions(i + 1).remove(i);
    sub.event_types = patterns.iter().map(|p| (*p).to_owned()).collect();
    sub.tenant_scope = None;
    sub.filter = None;
    sub.channel = "webhook".to_owned();
    sub.destination.address = format!("https://app-{i}.example.com/hooks");
    sub.ordering = herald_core::subscription::Ordering::None;
    sub
}

/// A header's value as text.
fn header<'r>(record: &'r ReadRecord, name: &str) -> Option<&'r str> {
    record
        .headers
        .iter()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| v.as_deref())
        .and_then(|v| std::str::from_utf8(v).ok())
}

/// Splits an expected multiset of (event, subscription) pairs by the subscription's channel.
fn by_channel(
    expected: &BTreeMap<(String, String), usize>,
    subs: &[Subscription],
) -> BTreeMap<String, BTreeMap<(String, String), usize>> {
    let channel_of: BTreeMap<&str, &str> = subs
        .iter()
        .map(|s| (s.subscription_id.as_str(), s.channel.as_str()))
        .collect();
    let mut out: BTreeMap<String, BTreeMap<(String, String), usize>> = BTreeMap::new();
    for (pair, count) in expected {
        out.entry(channel_of[pair.1.as_str()].to_owned())
            .or_default()
            .insert(pair.clone(), *count);
    }
    out
}
