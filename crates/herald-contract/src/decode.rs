//! From a Kafka record's bytes and headers to an [`Event`]: framing, writer schema, resolution
//! to the reader schema, CloudEvents attributes.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use serde_json::Value as Json;

use crate::catalog::{Catalog, ReaderPlan};
use crate::cloudevents::Attributes;
use crate::error::{DecodeError, DecodeErrorKind, Origin};
use crate::framing::{self, Framing};
use crate::registry::{RegistryClient, RegistryError};
use crate::schema::{SchemaEntry, record_event_type};

/// The most one datum may make the Avro decoder allocate. A corrupt length prefix must fail
/// the record, not the process; Kafka's own message limits are far below this.
const MAX_DATUM_ALLOCATION_BYTES: usize = 64 * 1024 * 1024;

/// A Kafka record as the decoder needs it, borrowed from the consumer's message.
#[derive(Debug, Clone, Default)]
pub struct RawRecord<'a> {
    /// The topic it was read from.
    pub topic: &'a str,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// The record's timestamp in milliseconds, if any.
    pub timestamp_ms: Option<i64>,
    /// Its value.
    pub payload: Option<&'a [u8]>,
    /// Its headers, in order.
    pub headers: Vec<(&'a str, &'a [u8])>,
}

impl RawRecord<'_> {
    fn origin(&self) -> Origin {
        Origin {
            topic: self.topic.to_owned(),
            partition: self.partition,
            offset: self.offset,
        }
    }
}

/// An event's data, as decoded.
#[derive(Debug, Clone)]
pub enum EventData {
    /// An Avro value of the reader schema (or the writer schema when there is no reader).
    Avro {
        /// The value.
        value: Value,
        /// The schema `value` conforms to.
        schema: Arc<SchemaEntry>,
    },
    /// A JSON document.
    Json(Json),
}

/// A decoded event: complete CloudEvents attributes and its data.
#[derive(Debug, Clone)]
pub struct Event {
    /// `ce_id`, else `<topic>-<partition>-<offset>`: stable for the record, so a replay carries
    /// the same id.
    pub id: String,
    /// `ce_source`, else `kafka://<topic>`.
    pub source: String,
    /// `ce_type`, else the record's `x-herald-event-type`, else the record's full name.
    pub event_type: String,
    /// `ce_time`, else the record's timestamp, in epoch milliseconds.
    pub time_ms: Option<i64>,
    /// `ce_subject`.
    pub subject: Option<String>,
    /// `ce_tenant`, else the data's top-level `tenant_id`: whose resource the event concerns.
    pub tenant: Option<String>,
    /// `ce_recipient`: the one app a point-to-point event is for.
    pub recipient: Option<String>,
    /// The W3C `traceparent` the producer set.
    pub traceparent: Option<String>,
    /// All attributes as read, extensions included.
    pub attributes: Attributes,
    /// How the value was framed.
    pub framing: Framing,
    /// The data.
    pub data: EventData,
}

impl Event {
    /// The data as the JSON that webhooks and people read (see [`crate::json`]).
    pub fn data_json(&self) -> Json {
        match &self.data {
            EventData::Avro { value, schema } => {
                crate::json::to_json(schema, schema.schema(), value)
            }
            EventData::Json(json) => json.clone(),
        }
    }
}

/// A writer schema and the reader schema it is resolved to, worked out once per schema id.
struct Plan {
    writer: WriterReader,
    reader: ReaderPlan,
}

/// apache-avro's datum reader borrows its schema and builds a name table when created; it is
/// built once per writer schema and kept beside the schema it borrows, instead of per record.
type DatumReader<'a> = GenericDatumReader<'a>;

self_cell::self_cell!(
    struct WriterReader {
        owner: Arc<SchemaEntry>,
        #[covariant]
        dependent: DatumReader,
    }
);

/// Decodes records; cheap to share behind an `Arc`.
pub struct Decoder {
    registry: Option<RegistryClient>,
    catalog: Arc<Catalog>,
    plans: Mutex<lru::LruCache<(u8, u64), Arc<Plan>>>,
}

impl Decoder {
    /// A decoder that fetches Confluent writer schemas from `registry` and resolves them to
    /// the reader schemas in `catalog`.
    pub fn new(registry: Option<RegistryClient>, catalog: Arc<Catalog>) -> Self {
        apache_avro::util::max_allocation_bytes(MAX_DATUM_ALLOCATION_BYTES);
        Self {
            registry,
            catalog,
            plans: Mutex::new(lru::LruCache::new(
                NonZeroUsize::new(1_000).unwrap_or(NonZeroUsize::MIN),
            )),
        }
    }

    /// The local catalogue.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Decodes one record.
    pub async fn decode(&self, record: &RawRecord<'_>) -> Result<Event, DecodeError> {
        self.decode_kind(record).await.map_err(|kind| DecodeError {
            origin: record.origin(),
            kind,
        })
    }

    async fn decode_kind(&self, record: &RawRecord<'_>) -> Result<Event, DecodeErrorKind> {
        let attributes = Attributes::from_headers(record.headers.iter().copied())?;
        let payload = record.payload.unwrap_or_default();
        let (framing, body) = framing::split(payload)?;
        let (attributes, data, record_type) = match framing {
            Framing::Json if attributes.is_structured() => {
                let (attributes, data) = attributes.from_structured(body)?;
                (attributes, EventData::Json(data), None)
            }
            Framing::Json => {
                let data: Json =
                    serde_json::from_slice(body).map_err(|e| DecodeErrorKind::InvalidJson {
                        detail: e.to_string(),
                    })?;
                (attributes, EventData::Json(data), None)
            }
            Framing::Confluent { schema_id } => {
                let plan = self.plan_for_id(schema_id).await?;
                let (value, schema, record_type) = read_datum(&plan, body)?;
                (attributes, EventData::Avro { value, schema }, record_type)
            }
            Framing::SingleObject { fingerprint } => {
                let plan = self.plan_for_fingerprint(fingerprint)?;
                let (value, schema, record_type) = read_datum(&plan, body)?;
                (attributes, EventData::Avro { value, schema }, record_type)
            }
        };
        complete(record, attributes, framing, data, record_type)
    }

    async fn plan_for_id(&self, schema_id: u32) -> Result<Arc<Plan>, DecodeErrorKind> {
        let key = (0u8, u64::from(schema_id));
        if let Some(plan) = self.cached_plan(&key) {
            return Ok(plan);
        }
        let registry = self
            .registry
            .as_ref()
            .ok_or(DecodeErrorKind::UnknownSchemaId { id: schema_id })?;
        let writer = registry
            .schema_by_id(schema_id)
            .await
            .map_err(|e| match e {
                RegistryError::NotFound { .. } => {
                    DecodeErrorKind::UnknownSchemaId { id: schema_id }
                }
                RegistryError::InvalidSchema { id, detail } => {
                    DecodeErrorKind::InvalidWriterSchema { id, detail }
                }
                RegistryError::Unavailable { .. } | RegistryError::Refused { .. } => {
                    DecodeErrorKind::RegistryUnavailable {
                        detail: e.to_string(),
                    }
                }
            })?;
        self.remember(key, writer)
    }

    fn plan_for_fingerprint(&self, fingerprint: u64) -> Result<Arc<Plan>, DecodeErrorKind> {
        let key = (1u8, fingerprint);
        if let Some(plan) = self.cached_plan(&key) {
            return Ok(plan);
        }
        let writer = self
            .catalog
            .by_fingerprint(fingerprint)
            .ok_or(DecodeErrorKind::UnknownFingerprint { fingerprint })?
            .entry
            .clone();
        self.remember(key, writer)
    }

    fn remember(
        &self,
        key: (u8, u64),
        writer: Arc<SchemaEntry>,
    ) -> Result<Arc<Plan>, DecodeErrorKind> {
        let reader = self.catalog.reader_for(&writer);
        let writer = WriterReader::try_new(writer, |entry| {
            GenericDatumReader::builder(entry.schema()).build()
        })
        .map_err(|e| DecodeErrorKind::InvalidWriterSchema {
            id: u32::try_from(key.1).unwrap_or(u32::MAX),
            detail: bounded(e.to_string()),
        })?;
        let plan = Arc::new(Plan { writer, reader });
        self.lock().put(key, plan.clone());
        Ok(plan)
    }

    fn cached_plan(&self, key: &(u8, u64)) -> Option<Arc<Plan>> {
        self.lock().get(key).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, lru::LruCache<(u8, u64), Arc<Plan>>> {
        // Every use is one call on the cache, so a poisoned lock holds a consistent cache.
        self.plans
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Reads the datum with the plan's writer schema, resolves it to the reader schema, and
/// returns the value, the schema it conforms to and the event type its record stands for.
fn read_datum(
    plan: &Plan,
    body: &[u8],
) -> Result<(Value, Arc<SchemaEntry>, Option<String>), DecodeErrorKind> {
    let mut cursor = body;
    let raw = plan
        .writer
        .borrow_dependent()
        .read_value(&mut cursor)
        .map_err(classify_read_error)?;
    if !cursor.is_empty() {
        return Err(DecodeErrorKind::CorruptDatum {
            detail: format!("{} bytes follow the end of the datum", cursor.len()),
        });
    }
    let mismatch =
        |reader: &SchemaEntry, error: apache_avro::Error| DecodeErrorKind::SchemaMismatch {
            reader: reader
                .record_name()
                .unwrap_or_else(|| "the reader union".to_owned()),
            detail: bounded(error.to_string()),
        };
    let (value, schema) = match (&plan.reader, raw) {
        (ReaderPlan::Same, raw) => (raw, plan.writer.borrow_owner().clone()),
        (ReaderPlan::Record(reader), raw) => (
            widen_decimals(raw)
                .resolve(reader.schema())
                .map_err(|e| mismatch(reader, e))?,
            reader.clone(),
        ),
        (
            ReaderPlan::Union {
                union,
                by_writer_branch,
            },
            Value::Union(index, inner),
        ) => {
            let value = match by_writer_branch.get(index as usize) {
                Some(Some(reader)) => widen_decimals(*inner)
                    .resolve(reader.schema())
                    .map_err(|e| mismatch(reader, e))?,
                _ => *inner,
            };
            (Value::Union(index, Box::new(value)), union.clone())
        }
        (ReaderPlan::Union { .. }, raw) => (raw, plan.writer.borrow_owner().clone()),
    };
    let record_type = match (&value, schema.schema()) {
        (Value::Union(index, _), Schema::Union(union)) => union
            .variants()
            .get(*index as usize)
            .and_then(|branch| record_event_type(schema.resolve(branch))),
        (_, top) => record_event_type(top),
    };
    Ok((value, schema, record_type))
}

/// Sign-extends every decimal in `value` to 32 bytes before resolution.
///
/// apache-avro 0.22's resolution refuses a bytes-backed decimal whose encoded length could not
/// hold the reader's full precision (a 2-byte `129.90` against `precision: 18`), although Avro
/// encodes decimals in as few bytes as the value needs. 32 bytes hold 76 digits; a wider
/// two's-complement encoding of the same number is still the same number.
fn widen_decimals(value: Value) -> Value {
    const WIDTH: usize = 32;
    match value {
        Value::Decimal(decimal) => {
            let unscaled = num_bigint::BigInt::from(decimal);
            let raw = unscaled.to_signed_bytes_be();
            if raw.len() >= WIDTH {
                return Value::Decimal(apache_avro::Decimal::from(raw));
            }
            let fill = if unscaled.sign() == num_bigint::Sign::Minus {
                0xFF
            } else {
                0x00
            };
            let mut wide = vec![fill; WIDTH - raw.len()];
            wide.extend_from_slice(&raw);
            Value::Decimal(apache_avro::Decimal::from(wide))
        }
        Value::Union(index, inner) => Value::Union(index, Box::new(widen_decimals(*inner))),
        Value::Array(items) => Value::Array(items.into_iter().map(widen_decimals).collect()),
        Value::Map(entries) => Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| (k, widen_decimals(v)))
                .collect(),
        ),
        Value::Record(fields) => Value::Record(
            fields
                .into_iter()
                .map(|(k, v)| (k, widen_decimals(v)))
                .collect(),
        ),
        other => other,
    }
}

/// A datum that ends early is truncated; anything else the decoder refuses is corrupt.
fn classify_read_error(error: apache_avro::Error) -> DecodeErrorKind {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(current) = source {
        if let Some(io) = current.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::UnexpectedEof
        {
            return DecodeErrorKind::Truncated {
                detail: bounded(format!("the datum ends early: {error}")),
            };
        }
        source = current.source();
    }
    DecodeErrorKind::CorruptDatum {
        detail: bounded(error.to_string()),
    }
}

/// apache-avro's messages can embed whole schemas and values; error details travel in
/// dead-letter headers and logs, so they are cut to a readable length.
fn bounded(mut detail: String) -> String {
    const MAX_DETAIL_CHARS: usize = 400;
    if let Some((cut, _)) = detail.char_indices().nth(MAX_DETAIL_CHARS) {
        detail.truncate(cut);
        detail.push('…');
    }
    detail
}

fn complete(
    record: &RawRecord<'_>,
    attributes: Attributes,
    framing: Framing,
    data: EventData,
    record_type: Option<String>,
) -> Result<Event, DecodeErrorKind> {
    let event_type = attributes
        .event_type
        .clone()
        .or(record_type)
        .ok_or_else(|| DecodeErrorKind::InvalidCloudEvent {
            detail: "no event type: set the ce_type header (or `type` in a structured event)"
                .to_owned(),
        })?;
    let time_ms = match &attributes.time {
        Some(text) => Some(
            chrono::DateTime::parse_from_rfc3339(text)
                .map_err(|e| DecodeErrorKind::InvalidCloudEvent {
                    detail: format!("ce_time {text:?} is not RFC 3339: {e}"),
                })?
                .timestamp_millis(),
        ),
        None => record.timestamp_ms,
    };
    let tenant = attributes
        .extension("tenant")
        .map(str::to_owned)
        .or_else(|| data_field(&data, "tenant_id"));
    Ok(Event {
        id: attributes
            .id
            .clone()
            .unwrap_or_else(|| format!("{}-{}-{}", record.topic, record.partition, record.offset)),
        source: attributes
            .source
            .clone()
            .unwrap_or_else(|| format!("kafka://{}", record.topic)),
        event_type,
        time_ms,
        subject: attributes.subject.clone(),
        tenant,
        recipient: attributes.extension("recipient").map(str::to_owned),
        traceparent: attributes.traceparent.clone(),
        attributes,
        framing,
        data,
    })
}

/// A top-level string field of the data, looked up without rendering the whole value.
fn data_field(data: &EventData, name: &str) -> Option<String> {
    let record = match data {
        EventData::Json(json) => return json.get(name)?.as_str().map(str::to_owned),
        EventData::Avro {
            value: Value::Union(_, inner),
            ..
        } => inner.as_ref(),
        EventData::Avro { value, .. } => value,
    };
    match record {
        Value::Record(fields) => {
            fields
                .iter()
                .find(|(n, _)| n == name)
                .and_then(|(_, v)| match v {
                    Value::String(s) => Some(s.clone()),
                    Value::Union(_, inner) => match inner.as_ref() {
                        Value::String(s) => Some(s.clone()),
                        _ => None,
                    },
                    _ => None,
                })
        }
        _ => None,
    }
}
