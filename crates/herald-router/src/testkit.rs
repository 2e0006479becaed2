//! A reproducible routing workload shared by the router's tests, the SIGKILL test of the real
//! binary and the router benchmark (feature `testkit`, never in a production build): events
//! of the four example types as single-object Avro with CloudEvents headers, subscriptions
//! exercising every routing feature, an oracle that computes the expected notifications by a
//! plain linear scan, independently of the router's index and of CEL, and a router running
//! in-process on a thread of its own.

use std::collections::BTreeMap;
use std::sync::Arc;

use herald_contract::records::RecordCodec;
use herald_contract::{Catalog, encode::encode_json, framing};
use herald_core::Subscription;
use herald_core::subscription::{Destination, Ordering};
use serde_json::{Value as Json, json};

use herald_core::topics::TopicNames;
use herald_kafka::TopicSpec;
use herald_kafka::testkit::{RunningService, TestKafka};

use crate::{Router, RouterConfig, RouterError};

/// One generated event and the facts the oracle needs.
#[derive(Debug, Clone)]
#[allow(missing_docs)] // The fields are the event's own attributes, named as in CloudEvents.
pub struct GeneratedEvent {
    pub id: String,
    pub event_type: &'static str,
    pub tenant: String,
    pub recipient: Option<String>,
    pub broadcast: Option<String>,
    pub currency: Option<&'static str>,
    pub amount: Option<f64>,
    pub registration_channel: Option<&'static str>,
    pub key: String,
    pub value: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

/// The event types of the workload.
pub const TYPES: [&str; 4] = [
    "order.created",
    "order.paid",
    "order.completed",
    "user.registered",
];

/// The `i`-th event of run `run`, among 5 tenants: types, tenants, currencies and routing
/// modes cycle with co-prime periods so that every combination occurs.
pub fn event(run: &str, i: usize) -> GeneratedEvent {
    event_among_tenants(run, i, 5)
}

/// The `i`-th event of run `run`, concerning tenant `m-<i mod tenants>`.
pub fn event_among_tenants(run: &str, i: usize, tenants: usize) -> GeneratedEvent {
    let event_type = TYPES[i % 4];
    let tenant = format!("m-{}", i % tenants);
    let currency = if i % 3 == 0 { "USD" } else { "CNY" };
    let cents = (i * 7919) % 100_000;
    let amount = format!("{}.{:02}", cents / 100, cents % 100);
    let order_id = format!("o-{}", i % 997);
    let time = 1_796_292_930_123_i64 + i as i64;
    let (data, currency, amount_value, registration_channel) = match event_type {
        "order.created" => (
            json!({"order_id": order_id, "tenant_id": tenant, "user_id": "u-1",
                   "items": [{"sku": "s-1", "name": "Tea", "quantity": 1, "unit_price": amount}],
                   "total_amount": amount, "currency": currency, "created_at": time}),
            Some(currency),
            None,
            None,
        ),
        "order.paid" => (
            json!({"order_id": order_id, "tenant_id": tenant, "user_id": "u-1",
                   "payment_id": format!("p-{i}"), "amount": amount, "currency": currency,
                   "payment_method": "ALIPAY",
                   "items": [{"sku": "s-1", "quantity": 1, "unit_price": amount}],
                   "paid_at": time}),
            Some(currency),
            Some(cents as f64 / 100.0),
            None,
        ),
        "order.completed" => (
            json!({"order_id": order_id, "tenant_id": tenant, "user_id": "u-1",
                   "final_amount": amount, "currency": currency, "completed_at": time,
                   "fulfilment": "SHIPPED"}),
            Some(currency),
            None,
            None,
        ),
        _ => {
            let channel = if i % 2 == 0 { "IOS" } else { "WEB" };
            (
                json!({"user_id": format!("u-{i}"), "tenant_id": tenant,
                       "email": format!("u{i}@example.com"), "display_name": "U",
                       "registered_at": time, "channel": channel}),
                None,
                None,
                Some(channel),
            )
        }
    };
    let catalog = Catalog::builtin();
    let schema = catalog
        .by_event_type(event_type)
        .expect("built-in event schema");
    let datum = encode_json(&schema.entry, &data).expect("generated data fits its schema");
    let value = framing::single_object(schema.entry.fingerprint(), &datum);
    let recipient = (i % 10 == 3).then(|| format!("app-{}", (i / 10) % 10));
    let broadcast = (i % 100 == 57).then(|| "webhook".to_owned());
    let id = format!("evt-{run}-{i}");
    let mut headers = vec![
        ("ce_specversion".to_owned(), "1.0".to_owned()),
        ("ce_id".to_owned(), id.clone()),
        ("ce_source".to_owned(), "/test/workload".to_owned()),
        ("ce_type".to_owned(), event_type.to_owned()),
        ("ce_tenant".to_owned(), tenant.clone()),
        ("content-type".to_owned(), "avro/binary".to_owned()),
    ];
    if let Some(app) = &recipient {
        headers.push(("ce_recipient".to_owned(), app.clone()));
    }
    if let Some(channel) = &broadcast {
        headers.push(("ce_broadcast".to_owned(), channel.clone()));
    }
    GeneratedEvent {
        id,
        event_type,
        tenant,
        recipient,
        broadcast,
        currency,
        amount: amount_value,
        registration_channel,
        key: order_id,
        value,
        headers,
    }
}

/// A filter as CEL text and as the Rust predicate the oracle uses instead.
pub struct FilterCase {
    /// The CEL expression the subscription carries.
    pub cel: &'static str,
    /// The same condition in Rust, for the oracle.
    pub holds: fn(&GeneratedEvent) -> bool,
}

/// The filters the workload's subscriptions use.
pub const FILTERS: [FilterCase; 4] = [
    FilterCase {
        cel: r#"data.currency == "CNY""#,
        holds: |e| e.currency == Some("CNY"),
    },
    FilterCase {
        cel: "double(data.amount) >= 500.0",
        holds: |e| e.amount.is_some_and(|a| a >= 500.0),
    },
    FilterCase {
        cel: r#"event.tenant == "m-1" || event.tenant == "m-2""#,
        holds: |e| e.tenant == "m-1" || e.tenant == "m-2",
    },
    FilterCase {
        cel: r#"data.channel == "IOS""#,
        holds: |e| e.registration_channel == Some("IOS"),
    },
];

const PATTERNS: [&[&str]; 6] = [
    &["order.paid"],
    &["order.*"],
    &["*"],
    &["user.registered"],
    &["order.created", "order.completed"],
    &["order.*", "order.paid"],
];

/// `count` subscriptions over 10 apps: patterns, tenant scopes, filters and two channels.
pub fn subscriptions(count: usize) -> Vec<Subscription> {
    (0..count)
        .map(|i| {
            subscription(
                i,
                (i % 4 == 0).then(|| vec![format!("m-{}", i % 5)]),
                (i % 5 != 0).then(|| FILTERS[i % 4].cel.to_owned()),
            )
        })
        .collect()
}

/// `count` subscriptions, each scoped to one of `tenants` tenants and each with a filter: an
/// open platform where every app sees its own merchants' events (the benchmark's workload).
pub fn tenant_scoped_subscriptions(count: usize, tenants: usize) -> Vec<Subscription> {
    (0..count)
        .map(|i| {
            subscription(
                i,
                Some(vec![format!("m-{}", i % tenants)]),
                Some(FILTERS[i % 4].cel.to_owned()),
            )
        })
        .collect()
}

/// The `i`-th subscription: its app, patterns, channel and ordering follow from `i`.
fn subscription(
    i: usize,
    tenant_scope: Option<Vec<String>>,
    filter: Option<String>,
) -> Subscription {
    let app = format!("app-{}", i % 10);
    let email = i % 7 == 0;
    Subscription {
        subscription_id: format!("sub-{i:05}"),
        app_id: app.clone(),
        event_types: PATTERNS[i % 6].iter().map(|p| (*p).to_owned()).collect(),
        tenant_scope,
        filter,
        channel: if email { "email" } else { "webhook" }.to_owned(),
        destination: Destination {
            address: if email {
                format!("{app}-{i}@example.com")
            } else {
                format!("https://{app}.example.com/hooks/{i}")
            },
            ..Destination::default()
        },
        transform: None,
        retry_schedule_ms: None,
        ordering: if i % 3 == 0 {
            Ordering::PerKey
        } else {
            Ordering::None
        },
        digest: None,
        enabled: true,
        created_at: 0,
        updated_at: 0,
        version: 1,
    }
}

fn filter_of(sub: &Subscription) -> Option<&'static FilterCase> {
    sub.filter.as_deref().map(|cel| {
        FILTERS
            .iter()
            .find(|f| f.cel == cel)
            .expect("a workload filter")
    })
}

fn pattern_matches(pattern: &str, event_type: &str) -> bool {
    pattern == "*"
        || pattern == event_type
        || pattern
            .strip_suffix('*')
            .is_some_and(|prefix| event_type.starts_with(prefix))
}

/// The (event id, subscription id) pairs the router must produce, by linear scan.
pub fn expected(
    subs: &[Subscription],
    events: &[GeneratedEvent],
) -> BTreeMap<(String, String), usize> {
    let mut out = BTreeMap::new();
    for event in events {
        let mut hits: Vec<&Subscription> = Vec::new();
        if let Some(channel) = &event.broadcast {
            let mut first_per_app: BTreeMap<&str, &Subscription> = BTreeMap::new();
            for sub in subs.iter().filter(|s| s.enabled && &s.channel == channel) {
                let slot = first_per_app.entry(&sub.app_id).or_insert(sub);
                if sub.subscription_id < slot.subscription_id {
                    *slot = sub;
                }
            }
            hits.extend(first_per_app.into_values());
        } else {
            for sub in subs {
                let addressed = event
                    .recipient
                    .as_ref()
                    .is_none_or(|app| app == &sub.app_id);
                let typed = sub
                    .event_types
                    .iter()
                    .any(|p| pattern_matches(p, event.event_type));
                let scoped = sub
                    .tenant_scope
                    .as_ref()
                    .is_none_or(|scope| scope.contains(&event.tenant));
                let filtered = filter_of(sub).is_none_or(|f| (f.holds)(event));
                if sub.enabled && addressed && typed && scoped && filtered {
                    hits.push(sub);
                }
            }
        }
        for sub in hits {
            *out.entry((event.id.clone(), sub.subscription_id.clone()))
                .or_default() += 1;
        }
    }
    out
}

/// Creates the compacted subscriptions topic of `names`, so that subscriptions can be written
/// before a router starts (it creates its topics itself otherwise).
pub async fn create_subscriptions_topic(kafka: &TestKafka, names: &TopicNames) {
    kafka
        .admin()
        .ensure_topics(&[
            TopicSpec::new(names.subscriptions(), 1).config("cleanup.policy", "compact")
        ])
        .await
        .expect("creating the subscriptions topic");
}

/// Writes subscriptions to `names`' subscriptions topic, as `herald subscriptions create`
/// does.
pub fn put_subscriptions(kafka: &TestKafka, names: &TopicNames, subs: &[Subscription]) {
    let records: Vec<(Vec<u8>, Vec<u8>)> = subs
        .iter()
        .map(|s| {
            (
                s.subscription_id.clone().into_bytes(),
                subscription_record(s),
            )
        })
        .collect();
    kafka.produce_bytes(
        &names.subscriptions(),
        records
            .iter()
            .map(|(k, v)| (k.as_slice(), Some(v.as_slice()), &[][..])),
    );
}

/// Produces generated events to `topic`, keyed by entity, with their CloudEvents headers.
pub fn produce_events(kafka: &TestKafka, topic: &str, events: &[GeneratedEvent]) {
    kafka.produce_bytes(
        topic,
        events.iter().map(|e| {
            (
                e.key.as_bytes(),
                Some(e.value.as_slice()),
                e.headers.as_slice(),
            )
        }),
    );
}

/// The event ids in the payloads of notification records, in record order.
pub fn notified_event_ids(records: &[herald_kafka::testkit::ReadRecord]) -> Vec<String> {
    records
        .iter()
        .map(|r| {
            payload_of(r.value.as_deref().unwrap_or_default())["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

/// Encodes a subscription as the record `herald subscriptions create` writes.
pub fn subscription_record(sub: &Subscription) -> Vec<u8> {
    RecordCodec::subscription()
        .encode(sub)
        .expect("subscription encodes")
}

/// Decodes notification records into (event id, subscription id) counts.
pub fn actual(values: impl IntoIterator<Item = Vec<u8>>) -> BTreeMap<(String, String), usize> {
    let codec = RecordCodec::notification();
    let mut out = BTreeMap::new();
    for value in values {
        let n: herald_core::Notification = codec.decode(&value).expect("notification decodes");
        *out.entry((n.event_id, n.subscription_id)).or_default() += 1;
    }
    out
}

/// Pretty JSON of a notification's payload, for assertions.
pub fn payload_of(value: &[u8]) -> Json {
    let n: herald_core::Notification = RecordCodec::notification().decode(value).expect("decodes");
    serde_json::from_str(&n.payload).expect("payload is JSON")
}

/// A router running in-process on a thread of its own, with its own async runtime for the
/// schema registry client; [`RunningRouter::stop`] finishes its transaction and joins it.
pub struct RunningRouter {
    service: RunningService<RouterError>,
    registry: prometheus::Registry,
    metrics: Arc<crate::RouterMetrics>,
}

impl RunningRouter {
    /// Builds the router (creating its topics) and starts it; returns once it is built.
    pub fn start(config: RouterConfig) -> Result<Self, RouterError> {
        let (service, (registry, metrics)) = RunningService::start(
            "router",
            1,
            move || Router::build(config),
            |router: &Router| (router.metrics_registry().clone(), router.metrics()),
            |router, stop, runtime| router.run_until_stopped(stop, runtime),
        )?;
        Ok(Self {
            service,
            registry,
            metrics,
        })
    }

    /// The router's metrics.
    pub fn metrics(&self) -> &crate::RouterMetrics {
        &self.metrics
    }

    /// The sum of a counter's values over all its labels, gathered from the registry.
    pub fn counter_total(&self, name: &str) -> f64 {
        self.registry
            .gather()
            .iter()
            .filter(|family| family.name() == name)
            .flat_map(|family| {
                family
                    .get_metric()
                    .iter()
                    .map(|m| m.get_counter().get_value())
            })
            .sum()
    }

    /// Asks the router to stop, waits until it has, and returns how it ended.
    pub fn stop(self) -> Result<(), RouterError> {
        self.service.stop()
    }
}

/// The routing step alone, without Kafka: `events` decoded, matched against `subscriptions`,
/// filtered, transformed and encoded as Notifications by the router's own processor on
/// `threads` threads, in batches of [`herald_kafka::DEFAULT_MAX_BATCH_RECORDS`] as the
/// pipeline hands them over under a backlog. Returns events
/// per second over `rounds` passes after one warm-up pass, and the notifications per pass.
/// The router benchmark reports it next to the Kafka figures: it is the router's CPU ceiling
/// on the machine.
pub fn routing_step_rate(
    subscriptions: &[Subscription],
    events: &[GeneratedEvent],
    threads: usize,
    rounds: usize,
) -> (f64, usize) {
    use herald_kafka::{BatchProcessor, ReadRecord};

    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let store = crate::subscriptions::SubscriptionStore::default();
    for sub in subscriptions {
        store.upsert(
            sub.clone()
                .compile()
                .expect("workload subscriptions compile"),
        );
    }
    let records: Vec<ReadRecord> = events
        .iter()
        .enumerate()
        .map(|(offset, e)| ReadRecord {
            topic: "events.bench".to_owned(),
            partition: 0,
            offset: offset as i64,
            timestamp_ms: Some(1_796_292_930_123),
            key: Some(e.key.clone().into_bytes()),
            value: Some(e.value.clone()),
            headers: e
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), Some(v.clone().into_bytes())))
                .collect(),
        })
        .collect();
    let mut config = RouterConfig::new("127.0.0.1:9092");
    config.route_threads = threads;
    let mut processor = crate::route::RouteProcessor::new(
        Arc::new(Router::decoder(&config).expect("the built-in schemas load")),
        store,
        TopicNames::with_prefix("herald").expect("a valid prefix"),
        Arc::new(
            crate::RouterMetrics::register(&prometheus::Registry::new()).expect("metrics register"),
        ),
        runtime.handle().clone(),
        threads,
    );
    let pass = |processor: &mut crate::route::RouteProcessor| {
        records
            .chunks(herald_kafka::DEFAULT_MAX_BATCH_RECORDS)
            .map(|batch| processor.process(batch).outputs.len())
            .sum::<usize>()
    };
    let notifications = pass(&mut processor);
    let started = std::time::Instant::now();
    for _ in 0..rounds {
        pass(&mut processor);
    }
    let rate = (records.len() * rounds) as f64 / started.elapsed().as_secs_f64();
    (rate, notifications)
}
