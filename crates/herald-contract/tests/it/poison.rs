//! Every kind of bad record returns its own typed error, naming the record, and only a
//! registry outage is retryable.

use herald_contract::decode::{Decoder, RawRecord};
use herald_contract::encode::encode_event;
use herald_contract::{DecodeErrorKind, RegistryClient, RegistryConfig, framing};

use crate::support::{order_paid, registry, repo_catalog, unique_subject};

/// Registers the order union under a fresh subject and returns its id and a valid
/// Confluent-framed `order.paid` payload.
async fn valid_order_paid(registry: &RegistryClient) -> (u32, Vec<u8>) {
    let catalog = repo_catalog();
    let union: Vec<serde_json::Value> = catalog
        .schemas()
        .iter()
        .filter(|s| s.event_type.starts_with("order."))
        .map(|s| serde_json::from_str(&s.text).expect("json"))
        .collect();
    let text = serde_json::Value::Array(union).to_string();
    let id = registry
        .register(&unique_subject("poison"), &text)
        .await
        .expect("register");
    let entry = registry.schema_by_id(id).await.expect("fetch");
    let datum = encode_event(&entry, "order.paid", &order_paid()).expect("encode");
    (id, framing::confluent(id, &datum))
}

async fn decode_kind(decoder: &Decoder, payload: &[u8]) -> Result<String, DecodeErrorKind> {
    let record = RawRecord {
        topic: "events.order",
        partition: 3,
        offset: 42,
        payload: Some(payload),
        ..RawRecord::default()
    };
    match decoder.decode(&record).await {
        Ok(event) => Ok(event.event_type),
        Err(error) => {
            let message = error.to_string();
            assert!(
                message.contains("events.order[3]@42"),
                "the error names the record: {message}"
            );
            Err(error.kind)
        }
    }
}

#[tokio::test]
async fn each_poison_record_gets_its_typed_error() {
    let registry = registry();
    let (_, valid) = valid_order_paid(&registry).await;
    let decoder = Decoder::new(Some(registry), repo_catalog());
    assert_eq!(
        decode_kind(&decoder, &valid).await,
        Ok("order.paid".to_owned())
    );

    let bad_magic = decode_kind(&decoder, &[0x42, 1, 2, 3]).await;
    assert_eq!(bad_magic, Err(DecodeErrorKind::BadMagic { first: 0x42 }));

    let unknown_id = decode_kind(&decoder, &framing::confluent(2_000_000_000, &valid[5..])).await;
    assert_eq!(
        unknown_id,
        Err(DecodeErrorKind::UnknownSchemaId { id: 2_000_000_000 })
    );

    let short_header = decode_kind(&decoder, &valid[..3]).await;
    assert!(
        matches!(short_header, Err(DecodeErrorKind::Truncated { .. })),
        "{short_header:?}"
    );

    let truncated = decode_kind(&decoder, &valid[..valid.len() - 6]).await;
    assert!(
        matches!(truncated, Err(DecodeErrorKind::Truncated { .. })),
        "{truncated:?}"
    );

    let mut trailing = valid.clone();
    trailing.extend_from_slice(&[0xde, 0xad]);
    let trailing = decode_kind(&decoder, &trailing).await;
    assert!(
        matches!(trailing, Err(DecodeErrorKind::CorruptDatum { .. })),
        "{trailing:?}"
    );

    // Union branch index 9 (zig-zag 18) does not exist in the three-branch union.
    let mut bad_branch = valid[..5].to_vec();
    bad_branch.push(18);
    bad_branch.extend_from_slice(&valid[6..]);
    let bad_branch = decode_kind(&decoder, &bad_branch).await;
    assert!(
        matches!(bad_branch, Err(DecodeErrorKind::CorruptDatum { .. })),
        "{bad_branch:?}"
    );

    let unknown_fingerprint =
        decode_kind(&decoder, &framing::single_object(0x1234, &valid[5..])).await;
    assert_eq!(
        unknown_fingerprint,
        Err(DecodeErrorKind::UnknownFingerprint {
            fingerprint: 0x1234
        })
    );

    let invalid_json = decode_kind(&decoder, b"{\"order_id\": ").await;
    assert!(
        matches!(invalid_json, Err(DecodeErrorKind::InvalidJson { .. })),
        "{invalid_json:?}"
    );

    let untyped_json = decode_kind(&decoder, b"{\"order_id\": \"o-1\"}").await;
    assert!(
        matches!(untyped_json, Err(DecodeErrorKind::InvalidCloudEvent { .. })),
        "{untyped_json:?}"
    );

    let empty = decode_kind(&decoder, b"").await;
    assert_eq!(empty, Err(DecodeErrorKind::Empty));

    for kind in [
        bad_magic,
        unknown_id,
        truncated,
        trailing,
        bad_branch,
        unknown_fingerprint,
        invalid_json,
    ] {
        assert!(
            !kind.expect_err("an error").is_retryable(),
            "bad records are dead-lettered, not retried"
        );
    }
}

#[tokio::test]
async fn an_unreachable_registry_is_retryable() {
    let (_, valid) = valid_order_paid(&registry()).await;
    // Nothing listens on port 1: the same record may decode once the registry is back.
    let down = RegistryClient::new(&RegistryConfig {
        url: "http://127.0.0.1:1/apis/ccompat/v7".to_owned(),
        timeout_ms: 2_000,
        cache_capacity: 10,
    })
    .expect("client");
    let decoder = Decoder::new(Some(down), repo_catalog());
    let error = decode_kind(&decoder, &valid)
        .await
        .expect_err("the registry is down");
    assert!(
        matches!(error, DecodeErrorKind::RegistryUnavailable { .. }),
        "{error:?}"
    );
    assert!(error.is_retryable());
}

#[tokio::test]
async fn single_object_payloads_decode_with_the_catalogue() {
    let catalog = repo_catalog();
    let paid = catalog
        .by_event_type("order.paid")
        .expect("order.paid is catalogued");
    let datum = encode_event(&paid.entry, "order.paid", &order_paid()).expect("encode");
    let payload = framing::single_object(paid.entry.fingerprint(), &datum);
    let decoder = Decoder::new(None, catalog.clone());
    let event = decoder
        .decode(&RawRecord {
            topic: "events.order",
            payload: Some(&payload),
            ..RawRecord::default()
        })
        .await
        .expect("decodes");
    assert_eq!(event.event_type, "order.paid");
    assert_eq!(event.data_json(), order_paid());
    assert_eq!(
        event.id, "events.order-0-0",
        "without ce_id the id is the record's position"
    );
}
