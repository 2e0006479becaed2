//! JSON in through `EventProducer`, Kafka records out, decoded back to the same JSON.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use herald_contract::decode::{Decoder, RawRecord};
use herald_contract::subjects::{self, SubjectStrategy};
use herald_contract::{Catalog, DecodeErrorKind, RegistryClient, RegistryConfig};
use herald_core::topics::TopicNames;
use herald_kafka::testkit::{Isolation, ReadRecord, TestKafka, test_registry};
use herald_producer::{EventProducer, OutgoingEvent};
use serde_json::json;

fn catalog() -> Arc<Catalog> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas");
    Arc::new(Catalog::load_dir(&dir).expect("schemas/ loads"))
}

/// Registers the catalogue under this test's topics and returns a registry client.
async fn register_for(kafka: &TestKafka, catalog: &Catalog) -> RegistryClient {
    let registry = RegistryClient::new(&RegistryConfig::new(test_registry())).expect("registry");
    let topics = TopicNames::with_prefix(kafka.prefix()).expect("prefix");
    let plans = subjects::plan(
        catalog,
        SubjectStrategy::TopicName,
        &topics,
        &[],
        &|domain| kafka.topic(&format!("events.{domain}")),
    )
    .expect("plan");
    subjects::register(&registry, &plans)
        .await
        .expect("register");
    registry
}

fn raw<'a>(record: &'a ReadRecord, topic: &'a str) -> RawRecord<'a> {
    RawRecord {
        topic,
        partition: record.partition,
        offset: record.offset,
        timestamp_ms: None,
        payload: record.value.as_deref(),
        headers: record
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_deref().unwrap_or_default()))
            .collect(),
    }
}

#[tokio::test]
async fn produced_events_decode_to_the_same_json_with_cloudevents_headers() {
    let kafka = TestKafka::new("producer-round-trip");
    let catalog = catalog();
    let registry = register_for(&kafka, &catalog).await;
    let order_topic = kafka.create_topic("events.order", 3).await;
    let user_topic = kafka.create_topic("events.user", 1).await;
    let producer = EventProducer::new(
        kafka.config(),
        registry.clone(),
        catalog.clone(),
        SubjectStrategy::TopicName,
        "/tests/producer",
    )
    .expect("producer");

    let paid = json!({
        "order_id": "o-1", "tenant_id": "m-7", "user_id": "u-1", "payment_id": "p-1",
        "amount": "129.90", "currency": "CNY", "payment_method": "WECHAT_PAY",
        "items": [{"sku": "s-1", "quantity": 1, "unit_price": "129.90"}],
        "paid_at": "2026-12-03T10:15:30.123Z"
    });
    let registered = json!({
        "user_id": "u-9", "tenant_id": "m-7", "email": "a@example.com", "display_name": "A",
        "locale": "zh-CN", "registered_at": "2026-12-03T09:00:00.000Z", "channel": "MINI_PROGRAM"
    });
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut first = OutgoingEvent::new("order.paid", &paid)
        .topic(&order_topic)
        .key("o-1")
        .id("evt-1");
    first.traceparent = Some(traceparent.to_owned());
    first.recipient = Some("app-3".to_owned());
    let produced = producer.produce(first).await.expect("produce order.paid");
    assert_eq!(produced.id, "evt-1");
    producer
        .produce(
            OutgoingEvent::new("user.registered", &registered)
                .topic(&user_topic)
                .key("u-9"),
        )
        .await
        .expect("produce user.registered");

    let decoder = Decoder::new(Some(registry), catalog);
    let records = kafka.read_topic(
        &order_topic,
        Isolation::ReadCommitted,
        1,
        Duration::from_secs(30),
    );
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].key.as_deref(), Some(b"o-1".as_slice()));
    let event = decoder
        .decode(&raw(&records[0], &order_topic))
        .await
        .expect("decodes");
    assert_eq!(event.event_type, "order.paid");
    assert_eq!(event.id, "evt-1");
    assert_eq!(event.source, "/tests/producer");
    assert_eq!(event.traceparent.as_deref(), Some(traceparent));
    assert_eq!(event.recipient.as_deref(), Some("app-3"));
    assert_eq!(event.tenant.as_deref(), Some("m-7"));
    assert!(event.time_ms.is_some(), "ce_time is set");
    let mut expected = paid.clone();
    expected["coupon_code"] = serde_json::Value::Null;
    expected["risk_score"] = serde_json::Value::Null;
    assert_eq!(event.data_json(), expected);

    let records = kafka.read_topic(
        &user_topic,
        Isolation::ReadCommitted,
        1,
        Duration::from_secs(30),
    );
    let event = decoder
        .decode(&raw(&records[0], &user_topic))
        .await
        .expect("decodes");
    assert_eq!(event.event_type, "user.registered");
    assert!(
        event.traceparent.is_some(),
        "a new trace is started when none is given"
    );
    assert_eq!(event.data_json()["channel"], "MINI_PROGRAM");
    assert_eq!(event.data_json()["phone"], serde_json::Value::Null);
}

#[tokio::test]
async fn data_that_does_not_fit_is_refused_before_anything_is_written() {
    let kafka = TestKafka::new("producer-refuses");
    let catalog = catalog();
    let registry = register_for(&kafka, &catalog).await;
    let topic = kafka.create_topic("events.order", 1).await;
    let producer = EventProducer::new(
        kafka.config(),
        registry,
        catalog,
        SubjectStrategy::TopicName,
        "/t",
    )
    .expect("producer");
    let bad = json!({"order_id": "o-1"});
    let error = producer
        .produce(OutgoingEvent::new("order.paid", &bad).topic(&topic))
        .await
        .expect_err("missing fields");
    assert!(
        error.to_string().contains("$.tenant_id: is required"),
        "{error}"
    );
    let unknown = producer
        .produce(OutgoingEvent::new("order.refunded", &bad).topic(&topic))
        .await
        .expect_err("no such branch");
    assert!(error_mentions(&unknown, "order.refunded"), "{unknown}");
    let records = kafka.read_topic(
        &topic,
        Isolation::ReadUncommitted,
        0,
        Duration::from_secs(5),
    );
    assert!(records.is_empty(), "nothing was written: {records:?}");
}

fn error_mentions(error: &herald_producer::ProduceError, text: &str) -> bool {
    error.to_string().contains(text)
}

#[tokio::test]
async fn a_poison_record_read_from_kafka_names_its_position() {
    let kafka = TestKafka::new("producer-poison");
    let topic = kafka.create_topic("events.order", 1).await;
    kafka.produce(
        &topic,
        &[("k", "ok-but-not-avro", &[]), ("k", "\u{0}\u{0}", &[])],
    );
    let records = kafka.read_topic(&topic, Isolation::ReadCommitted, 2, Duration::from_secs(30));
    assert_eq!(records.len(), 2);
    let decoder = Decoder::new(None, catalog());
    let first = decoder
        .decode(&raw(&records[0], &topic))
        .await
        .expect_err("not a framing");
    assert_eq!(first.kind, DecodeErrorKind::BadMagic { first: b'o' });
    assert_eq!(
        (first.origin.topic.as_str(), first.origin.offset),
        (topic.as_str(), records[0].offset)
    );
    let second = decoder
        .decode(&raw(&records[1], &topic))
        .await
        .expect_err("short header");
    assert!(
        matches!(second.kind, DecodeErrorKind::Truncated { .. }),
        "{second}"
    );
    assert!(
        second
            .to_string()
            .contains(&format!("{topic}[0]@{}", records[1].offset)),
        "{second}"
    );
}
