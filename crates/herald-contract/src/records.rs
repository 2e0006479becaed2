//! Herald's own records (Subscription, Notification, …) as Avro in single-object encoding,
//! with the schemas compiled into the binary from `schemas/herald/`.
//!
//! Single-object encoding makes each record self-describing (its writer schema's fingerprint
//! travels with it) without a registry round trip on the hot path, so the router and the
//! delivery services run even while the registry is down; `herald schemas register` still
//! publishes the same schemas for analysts' tools.

use std::path::PathBuf;
use std::sync::{Arc, LazyLock};

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::catalog::Catalog;
use crate::encode::{EncodeError, encode_json, encode_value};
use crate::framing::{self, Framing};
use crate::schema::SchemaEntry;

/// The schema files compiled into the binary: Herald's records and the example events.
const BUILTIN: &[(&str, &str)] = &[
    (
        "herald/app.avsc",
        include_str!("../../../schemas/herald/app.avsc"),
    ),
    (
        "herald/subscription.avsc",
        include_str!("../../../schemas/herald/subscription.avsc"),
    ),
    (
        "herald/notification.avsc",
        include_str!("../../../schemas/herald/notification.avsc"),
    ),
    (
        "herald/delivery_attempt.avsc",
        include_str!("../../../schemas/herald/delivery_attempt.avsc"),
    ),
    (
        "events/order.created.avsc",
        include_str!("../../../schemas/events/order.created.avsc"),
    ),
    (
        "events/order.paid.avsc",
        include_str!("../../../schemas/events/order.paid.avsc"),
    ),
    (
        "events/order.completed.avsc",
        include_str!("../../../schemas/events/order.completed.avsc"),
    ),
    (
        "events/user.registered.avsc",
        include_str!("../../../schemas/events/user.registered.avsc"),
    ),
];

/// The full name of Herald's Notification record.
const NOTIFICATION: &str = "dev.herald.Notification";

static BUILTIN_CATALOG: LazyLock<Arc<Catalog>> = LazyLock::new(|| {
    let mut catalog = Catalog::default();
    for (path, text) in BUILTIN {
        catalog
            .add(PathBuf::from(path), (*text).to_owned())
            .unwrap_or_else(|e| panic!("the built-in schema {path} is invalid: {e}"));
    }
    Arc::new(catalog)
});

impl Catalog {
    /// The schemas compiled into the binary (`schemas/` as of the build).
    pub fn builtin() -> Arc<Catalog> {
        BUILTIN_CATALOG.clone()
    }
}

/// Why a Herald record could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The bytes are not single-object encoded.
    #[error("not an Avro single-object record: {0}")]
    Framing(String),
    /// The fingerprint names a schema this build does not know.
    #[error("unknown writer schema fingerprint {0:#018x}")]
    UnknownSchema(u64),
    /// The schema is not the expected record's.
    #[error("expected a {expected} record, found {found}")]
    WrongRecord {
        /// The record this codec reads.
        expected: &'static str,
        /// The record found.
        found: String,
    },
    /// The datum does not read, or does not map to the Rust type.
    #[error("corrupt {record} record: {detail}")]
    Corrupt {
        /// The record.
        record: &'static str,
        /// What failed.
        detail: String,
    },
}

/// One kind of Herald record (e.g. `dev.herald.Subscription`) and its codec.
#[derive(Clone)]
pub struct RecordCodec {
    name: &'static str,
    entry: Arc<SchemaEntry>,
    catalog: Arc<Catalog>,
}

impl RecordCodec {
    /// The codec of the built-in record `full_name`.
    ///
    /// # Panics
    /// If the build holds no such record: the names are constants of this crate's callers.
    pub fn builtin(full_name: &'static str) -> Self {
        let catalog = Catalog::builtin();
        let entry = catalog
            .by_name(full_name)
            .unwrap_or_else(|| panic!("no built-in schema for {full_name}"))
            .entry
            .clone();
        Self {
            name: full_name,
            entry,
            catalog,
        }
    }

    /// `dev.herald.Subscription`.
    pub fn subscription() -> Self {
        Self::builtin("dev.herald.Subscription")
    }

    /// `dev.herald.Notification`.
    pub fn notification() -> Self {
        Self::builtin(NOTIFICATION)
    }

    /// The writer schema.
    pub fn entry(&self) -> &Arc<SchemaEntry> {
        &self.entry
    }

    /// Encodes a serializable record through its JSON form (see [`crate::encode`]).
    pub fn encode<T: Serialize>(&self, record: &T) -> Result<Vec<u8>, EncodeError> {
        let json = serde_json::to_value(record).map_err(|e| EncodeError {
            path: "$".to_owned(),
            message: e.to_string(),
        })?;
        let datum = encode_json(&self.entry, &json)?;
        Ok(framing::single_object(self.entry.fingerprint(), &datum))
    }

    /// Encodes an Avro value of this record's schema.
    pub fn encode_value(&self, value: Value) -> Result<Vec<u8>, EncodeError> {
        let datum = encode_value(&self.entry, value)?;
        Ok(framing::single_object(self.entry.fingerprint(), &datum))
    }

    /// Decodes a single-object record written with this record's schema into `T`.
    pub fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, RecordError> {
        let (framing, datum) =
            framing::split(bytes).map_err(|e| RecordError::Framing(e.to_string()))?;
        let Framing::SingleObject { fingerprint } = framing else {
            return Err(RecordError::Framing(format!(
                "{} framing where single-object was expected",
                framing.label()
            )));
        };
        let writer = self
            .catalog
            .by_fingerprint(fingerprint)
            .ok_or(RecordError::UnknownSchema(fingerprint))?;
        if writer.full_name != self.name {
            return Err(RecordError::WrongRecord {
                expected: self.name,
                found: writer.full_name.clone(),
            });
        }
        let corrupt = |detail: String| RecordError::Corrupt {
            record: self.name,
            detail,
        };
        let mut cursor = datum;
        let value = GenericDatumReader::builder(writer.entry.schema())
            .build()
            .and_then(|reader| reader.read_value(&mut cursor))
            .map_err(|e| corrupt(e.to_string()))?;
        if !cursor.is_empty() {
            return Err(corrupt(format!("{} bytes after the datum", cursor.len())));
        }
        let json = crate::json::to_json(&writer.entry, writer.entry.schema(), &value);
        serde_json::from_value(json).map_err(|e| corrupt(e.to_string()))
    }
}

/// Serializes Notifications with the built-in schema: built once, because building a writer
/// resolves the schema's names, which cost more than writing a record.
static NOTIFICATION_WRITER: LazyLock<GenericDatumWriter<'static>> = LazyLock::new(|| {
    let catalog: &'static Catalog = &BUILTIN_CATALOG;
    let entry = catalog
        .by_name(NOTIFICATION)
        .expect("the built-in catalog holds the Notification schema");
    GenericDatumWriter::builder(entry.entry.schema())
        .build()
        .expect("the built-in Notification schema resolves")
});

/// Notifications are written at the router's full rate, so they are serialized straight from
/// the struct by apache-avro's schema-aware serde writer: no `Value` tree, no copies of the
/// strings, no validation pass (the writer fails on a value that does not fit).
pub fn encode_notification(
    codec: &RecordCodec,
    n: &herald_core::Notification,
) -> Result<Vec<u8>, EncodeError> {
    debug_assert_eq!(codec.name, NOTIFICATION, "a Notification codec");
    let datum = NOTIFICATION_WRITER
        .write_ser_to_vec(n)
        .or_else(|e| crate::encode::fail("$", format!("the value does not fit the schema: {e}")))?;
    Ok(framing::single_object(codec.entry.fingerprint(), &datum))
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_core::subscription::{Destination, Ordering, Subscription, TransformSpec};
    use herald_core::{Notification, notification_id};

    fn subscription() -> Subscription {
        Subscription {
            subscription_id: "sub-1".into(),
            app_id: "app-1".into(),
            event_types: vec!["order.*".into()],
            tenant_scope: Some(vec!["m-7".into()]),
            filter: Some("data.currency == 'CNY'".into()),
            channel: "webhook".into(),
            destination: Destination {
                address: "https://example.com/h".into(),
                template_id: None,
                headers: [("x-team".to_owned(), "blue".to_owned())].into(),
            },
            transform: Some(TransformSpec {
                template: None,
                fields: Some(vec!["order_id".into()]),
            }),
            retry_schedule_ms: Some(vec![1000, 5000]),
            ordering: Ordering::PerKey,
            digest: None,
            enabled: true,
            created_at: 1_796_292_930_123,
            updated_at: 1_796_292_930_456,
            version: 3,
        }
    }

    #[test]
    fn subscriptions_round_trip_through_avro() {
        let codec = RecordCodec::subscription();
        let bytes = codec.encode(&subscription()).unwrap();
        assert_eq!(&bytes[..2], &[0xC3, 0x01]);
        let back: Subscription = codec.decode(&bytes).unwrap();
        assert_eq!(back, subscription());
    }

    #[test]
    fn notifications_round_trip_through_avro() {
        let codec = RecordCodec::notification();
        let n = Notification {
            notification_id: notification_id("e-1", "sub-1"),
            event_id: "e-1".into(),
            event_type: "order.paid".into(),
            event_source: "/orders".into(),
            event_time: 1_796_292_930_123,
            subscription_id: "sub-1".into(),
            app_id: "app-1".into(),
            channel: "webhook".into(),
            destination: "https://example.com/h".into(),
            ordering_key: Some("o-1".into()),
            payload: "{\"a\":1}".into(),
            content_type: "application/json".into(),
            attempt: 0,
            created_at: 1_796_292_931_000,
            traceparent: None,
        };
        let bytes = encode_notification(&codec, &n).unwrap();
        assert_eq!(codec.decode::<Notification>(&bytes).unwrap(), n);
        assert_eq!(codec.encode(&n).unwrap(), bytes);
    }

    #[test]
    fn the_wrong_record_or_garbage_is_refused() {
        let subscriptions = RecordCodec::subscription();
        let bytes = subscriptions.encode(&subscription()).unwrap();
        assert!(matches!(
            RecordCodec::notification().decode::<Notification>(&bytes),
            Err(RecordError::WrongRecord { .. })
        ));
        assert!(matches!(
            subscriptions.decode::<Subscription>(b"{}"),
            Err(RecordError::Framing(_))
        ));
        let mut truncated = bytes.clone();
        truncated.truncate(bytes.len() - 3);
        assert!(matches!(
            subscriptions.decode::<Subscription>(&truncated),
            Err(RecordError::Corrupt { .. })
        ));
    }
}
