//! Writer→reader schema resolution with writer schemas fetched from the real registry: old
//! writers read by new readers, new writers read by old readers, and unions of event records.

use herald_contract::decode::{Decoder, RawRecord};
use herald_contract::encode::{encode_event, encode_json};
use herald_contract::{DecodeErrorKind, SchemaEntry, framing};
use serde_json::json;

use crate::support::{catalog_of, order_paid, registry, repo_catalog, unique_subject};

const V1: &str = r#"{"type":"record","name":"Payment","namespace":"test.evolution","fields":[
    {"name":"id","type":"string"},
    {"name":"amount","type":"int"},
    {"name":"note","type":"string","default":"none"}]}"#;
/// V1 plus a field with a default, minus a field that had one, and `amount` promoted to long.
const V2_BACKWARD: &str = r#"{"type":"record","name":"Payment","namespace":"test.evolution","fields":[
    {"name":"id","type":"string"},
    {"name":"amount","type":"long"},
    {"name":"currency","type":"string","default":"CNY"}]}"#;
/// V1 plus a field with a default, minus a field that had one: V1 readers can read it.
const V3_FORWARD: &str = r#"{"type":"record","name":"Payment","namespace":"test.evolution","fields":[
    {"name":"id","type":"string"},
    {"name":"amount","type":"int"},
    {"name":"currency","type":"string","default":"CNY"}]}"#;
/// `amount` as a string: no reader with an int `amount` can read it.
const INCOMPATIBLE: &str = r#"{"type":"record","name":"Payment","namespace":"test.evolution","fields":[
    {"name":"id","type":"string"},
    {"name":"amount","type":"string"}]}"#;

/// Registers `writer` under a fresh subject, encodes `data` with it, and decodes the framed
/// record with a decoder whose catalogue holds `reader`.
async fn write_then_read(
    writer: &str,
    data: serde_json::Value,
    reader: &str,
) -> Result<serde_json::Value, DecodeErrorKind> {
    let registry = registry();
    let id = registry
        .register(&unique_subject("evolution"), writer)
        .await
        .expect("register the writer schema");
    let datum =
        encode_json(&SchemaEntry::parse(writer).expect("writer parses"), &data).expect("encode");
    let payload = framing::confluent(id, &datum);
    let decoder = Decoder::new(Some(registry), catalog_of(&[reader]));
    let record = RawRecord {
        topic: "events.test",
        payload: Some(&payload),
        ..RawRecord::default()
    };
    decoder
        .decode(&record)
        .await
        .map(|event| event.data_json())
        .map_err(|e| e.kind)
}

#[tokio::test]
async fn an_old_writer_is_read_by_a_newer_reader() {
    let read = write_then_read(
        V1,
        json!({"id": "p1", "amount": 5, "note": "hi"}),
        V2_BACKWARD,
    )
    .await
    .expect("v1 data reads as v2");
    // `note` is gone, `currency` takes its default, `amount` is promoted from int to long.
    assert_eq!(read, json!({"id": "p1", "amount": 5, "currency": "CNY"}));
}

#[tokio::test]
async fn a_newer_writer_is_read_by_an_old_reader() {
    let read = write_then_read(
        V3_FORWARD,
        json!({"id": "p2", "amount": 7, "currency": "USD"}),
        V1,
    )
    .await
    .expect("v3 data reads as v1");
    // `currency` is dropped, `note` takes the old reader's default.
    assert_eq!(read, json!({"id": "p2", "amount": 7, "note": "none"}));
}

#[tokio::test]
async fn an_incompatible_writer_is_a_schema_mismatch() {
    let error = write_then_read(INCOMPATIBLE, json!({"id": "p3", "amount": "7"}), V1)
        .await
        .expect_err("a string amount cannot be read as an int");
    assert!(
        matches!(error, DecodeErrorKind::SchemaMismatch { .. }),
        "{error:?}"
    );
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn an_older_event_union_resolves_to_the_catalogue_union() {
    // The order domain's union as registered before `risk_score` was added to OrderPaid.
    let catalog = repo_catalog();
    let mut branches = Vec::new();
    for schema in catalog
        .schemas()
        .iter()
        .filter(|s| s.event_type.starts_with("order."))
    {
        let mut json: serde_json::Value = serde_json::from_str(&schema.text).expect("json");
        if schema.event_type == "order.paid" {
            let fields = json["fields"].as_array_mut().expect("fields");
            fields.retain(|f| f["name"] != "risk_score");
        }
        branches.push(json);
    }
    let old_union = serde_json::Value::Array(branches).to_string();
    let registry = registry();
    let id = registry
        .register(&unique_subject("order-union"), &old_union)
        .await
        .expect("register the old union");
    let mut data = order_paid();
    data.as_object_mut().expect("object").remove("risk_score");
    let datum = encode_event(
        &SchemaEntry::parse(&old_union).expect("parses"),
        "order.paid",
        &data,
    )
    .expect("encode");
    let payload = framing::confluent(id, &datum);

    let decoder = Decoder::new(Some(registry), catalog);
    let event = decoder
        .decode(&RawRecord {
            topic: "events.order",
            payload: Some(&payload),
            ..RawRecord::default()
        })
        .await
        .expect("decodes");
    assert_eq!(
        event.event_type, "order.paid",
        "the type comes from the union branch"
    );
    let mut expected = data.clone();
    expected["risk_score"] = serde_json::Value::Null;
    assert_eq!(event.data_json(), expected);
    assert_eq!(
        event.tenant.as_deref(),
        Some("m-7"),
        "tenant from the data's tenant_id"
    );
}
