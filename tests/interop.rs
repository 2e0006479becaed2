//! Avro interop with Confluent's Python client (confluent-kafka + fastavro), through the real
//! broker and registry: Python writes and Herald reads every field exactly; Herald writes and
//! Python reads every field exactly.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use herald_contract::decode::{Decoder, RawRecord};
use herald_contract::subjects::{self, SubjectStrategy};
use herald_contract::{Catalog, RegistryClient, RegistryConfig};
use herald_core::topics::TopicNames;
use herald_kafka::testkit::{Isolation, TestKafka, test_registry};
use herald_producer::{EventProducer, OutgoingEvent};
use serde_json::{Value, json};

const COUNT: usize = 24;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs the interop script with the venv's Python and returns its stdout lines as JSON.
fn python(args: &[&str]) -> Vec<Value> {
    let interpreter = std::env::var("HERALD_TEST_PYTHON").expect(
        "HERALD_TEST_PYTHON is not set: scripts/test creates the venv with confluent-kafka and \
         fastavro and sets it",
    );
    let script = repo().join("tests/interop/avro_interop.py");
    let output = Command::new(interpreter)
        .arg(script)
        .args(args)
        .output()
        .expect("python runs");
    assert!(
        output.status.success(),
        "avro_interop.py {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("utf-8 output")
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect()
}

fn catalog() -> Arc<Catalog> {
    Arc::new(Catalog::load_dir(&repo().join("schemas")).expect("schemas/ loads"))
}

#[tokio::test]
async fn herald_decodes_what_confluents_python_serializer_writes() {
    let kafka = TestKafka::new("interop-python-writes");
    let topic = kafka.create_topic("events.order", 2).await;
    let schema = repo().join("schemas/events/order.paid.avsc");
    let count = COUNT.to_string();
    let expected = python(&[
        "produce",
        "--brokers",
        &kafka.config().brokers,
        "--registry",
        &test_registry(),
        "--topic",
        &topic,
        "--schema",
        schema.to_str().expect("utf-8 path"),
        "--count",
        &count,
    ]);
    assert_eq!(expected.len(), COUNT);

    let registry = RegistryClient::new(&RegistryConfig::new(test_registry())).expect("registry");
    let decoder = Decoder::new(Some(registry), catalog());
    let records = kafka.read_topic(
        &topic,
        Isolation::ReadCommitted,
        COUNT,
        Duration::from_secs(30),
    );
    assert_eq!(records.len(), COUNT);
    for record in &records {
        let raw = RawRecord {
            topic: &topic,
            partition: record.partition,
            offset: record.offset,
            timestamp_ms: None,
            payload: record.value.as_deref(),
            headers: record
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_deref().unwrap_or_default()))
                .collect(),
        };
        let event = decoder
            .decode(&raw)
            .await
            .expect("Herald decodes Python's record");
        let wanted = expected
            .iter()
            .find(|e| e["ce_id"] == json!(event.id))
            .unwrap_or_else(|| panic!("no expected record with ce_id {}", event.id));
        assert_eq!(event.event_type, "order.paid");
        assert_eq!(
            json!(String::from_utf8_lossy(
                record.key.as_deref().unwrap_or_default()
            )),
            wanted["key"]
        );
        assert_eq!(event.data_json(), wanted["value"], "record {}", event.id);
    }
}

/// Deterministic, varied `order.paid` data: decimals of several sizes, nulls and values in
/// every optional field, every payment method, non-ASCII text.
fn order_paid(i: usize) -> Value {
    let methods = ["CARD", "ALIPAY", "WECHAT_PAY", "BANK_TRANSFER", "WALLET"];
    let items: Vec<Value> = (0..=i % 3)
        .map(|j| json!({"sku": format!("sku-{i}-{j}"), "quantity": j + 1, "unit_price": format!("{}.{:02}", i * 13 + j, (i * 7 + j) % 100)}))
        .collect();
    json!({
        "order_id": format!("o-{i}"),
        "tenant_id": format!("m-{}", i % 4),
        "user_id": format!("用户-{i}"),
        "payment_id": format!("pay-{i:05}"),
        "amount": format!("{}.{:02}", i * 1_000_003, i % 100),
        "currency": (["CNY", "USD", "EUR"][i % 3]),
        "payment_method": methods[i % methods.len()],
        "items": items,
        "coupon_code": if i % 2 == 0 { Value::Null } else { json!(format!("SAVE-{i}")) },
        "paid_at": format!("2026-12-03T10:{:02}:{:02}.{:03}Z", i % 60, (i * 7) % 60, (i * 37) % 1000),
        "risk_score": if i % 3 == 0 { Value::Null } else { json!(i as f64 / 64.0) },
    })
}

#[tokio::test]
async fn confluents_python_deserializer_reads_what_herald_writes() {
    let kafka = TestKafka::new("interop-herald-writes");
    let catalog = catalog();
    let registry = RegistryClient::new(&RegistryConfig::new(test_registry())).expect("registry");
    let topics = TopicNames::with_prefix(kafka.prefix()).expect("prefix");
    let plans = subjects::plan(
        &catalog,
        SubjectStrategy::TopicName,
        &topics,
        &[],
        &|domain| kafka.topic(&format!("events.{domain}")),
    )
    .expect("plan");
    subjects::register(&registry, &plans)
        .await
        .expect("register");
    let topic = kafka.create_topic("events.order", 2).await;
    let producer = EventProducer::new(
        kafka.config(),
        registry,
        catalog,
        SubjectStrategy::TopicName,
        "/interop",
    )
    .expect("producer");
    let sent: Vec<Value> = (0..COUNT).map(order_paid).collect();
    for (i, data) in sent.iter().enumerate() {
        producer
            .produce(
                OutgoingEvent::new("order.paid", data)
                    .topic(&topic)
                    .key(format!("o-{i}"))
                    .id(format!("herald-{i}")),
            )
            .await
            .expect("produce");
    }

    let count = COUNT.to_string();
    let read = python(&[
        "consume",
        "--brokers",
        &kafka.config().brokers,
        "--registry",
        &test_registry(),
        "--topic",
        &topic,
        "--count",
        &count,
        "--timeout-secs",
        "60",
    ]);
    assert_eq!(read.len(), COUNT);
    for line in &read {
        let id = line["headers"]["ce_id"].as_str().expect("ce_id header");
        let i: usize = id.trim_start_matches("herald-").parse().expect("our id");
        assert_eq!(line["headers"]["ce_type"], "order.paid");
        assert_eq!(line["key"], json!(format!("o-{i}")));
        assert_eq!(line["value"], sent[i], "record {id} as Python reads it");
    }
}
