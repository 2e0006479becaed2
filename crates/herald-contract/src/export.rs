//! Decoded events written to an Avro object container file, for analysts (`herald replay
//! --out events.avro`, and the Parquet export, which converts such a file).
//!
//! Each exported record keeps where the event came from and its CloudEvents context next to
//! the data, which stays in the event type's reader schema:
//! `{topic, partition, offset, timestamp, id, type, source, subject, tenant, data}`. With one
//! event type `data` is that type's record; with several it is a union of them (Parquet takes
//! only the first form, so its export asks for one type).

use std::io::Write;

use apache_avro::Schema;
use apache_avro::types::Value;
use serde_json::{Value as Json, json};

use crate::catalog::CatalogSchema;
use crate::decode::{Event, EventData};

/// Why an export could not be set up or a record could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// No event type was given to export.
    #[error("no event type to export")]
    NoTypes,
    /// The export schema could not be built from the event types' schemas.
    #[error("building the export schema: {0}")]
    Schema(String),
    /// The event is not Avro data of one of the exported schemas (JSON data, or a type
    /// outside the export).
    #[error("event {id} ({event_type}) is not Avro data of an exported schema")]
    NotExported {
        /// The event's id.
        id: String,
        /// The event's type.
        event_type: String,
    },
    /// Writing failed.
    #[error("writing the Avro file: {0}")]
    Write(String),
}

/// Where an exported event was read from.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// The topic.
    pub topic: &'a str,
    /// The partition.
    pub partition: i32,
    /// The offset.
    pub offset: i64,
    /// The record's timestamp, epoch milliseconds.
    pub timestamp_ms: Option<i64>,
}

/// The schema of exported records, for a set of event types.
pub struct ExportSchema {
    schema: Schema,
    /// The exported types' schema fingerprints, in union order.
    members: Vec<u64>,
    union: bool,
}

impl ExportSchema {
    /// The export schema for `types` (their reader schemas, in order).
    pub fn new(types: &[&CatalogSchema]) -> Result<Self, ExportError> {
        let data: Vec<Json> = types
            .iter()
            .map(|t| serde_json::from_str(&t.text).map_err(|e| ExportError::Schema(e.to_string())))
            .collect::<Result<_, _>>()?;
        let data_type = match data.len() {
            0 => return Err(ExportError::NoTypes),
            1 => data.into_iter().next().expect("one schema"),
            _ => Json::Array(data),
        };
        let optional_string = json!(["null", "string"]);
        let text = json!({
            "type": "record",
            "name": "ExportedEvent",
            "namespace": "dev.herald.export",
            "doc": "An event exported by herald replay: where it was read, its CloudEvents context, and its data in the reader schema.",
            "fields": [
                {"name": "topic", "type": "string"},
                {"name": "partition", "type": "int"},
                {"name": "offset", "type": "long"},
                {"name": "timestamp", "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}]},
                {"name": "id", "type": "string"},
                {"name": "type", "type": "string"},
                {"name": "source", "type": "string"},
                {"name": "subject", "type": optional_string},
                {"name": "tenant", "type": optional_string},
                {"name": "data", "type": data_type},
            ],
        });
        let schema = Schema::parse(&text).map_err(|e| ExportError::Schema(e.to_string()))?;
        Ok(Self {
            schema,
            members: types.iter().map(|t| t.entry.fingerprint()).collect(),
            union: types.len() > 1,
        })
    }

    /// The schema as JSON text.
    pub fn canonical_form(&self) -> String {
        self.schema.canonical_form()
    }

    /// A writer of an object container file into `out`.
    pub fn writer<W: Write>(&self, out: W) -> Result<AvroExport<'_, W>, ExportError> {
        let writer = apache_avro::Writer::new(&self.schema, out)
            .map_err(|e| ExportError::Write(e.to_string()))?;
        Ok(AvroExport {
            export: self,
            writer,
        })
    }

    /// The exported record of `event`.
    fn record(&self, origin: Origin<'_>, event: &Event) -> Result<Value, ExportError> {
        let not_exported = || ExportError::NotExported {
            id: event.id.clone(),
            event_type: event.event_type.clone(),
        };
        let EventData::Avro { value, schema } = &event.data else {
            return Err(not_exported());
        };
        let member = self
            .members
            .iter()
            .position(|f| *f == schema.fingerprint())
            .ok_or_else(not_exported)?;
        let data = if self.union {
            Value::Union(member as u32, Box::new(value.clone()))
        } else {
            value.clone()
        };
        let optional_string = |s: &Option<String>| match s {
            Some(s) => Value::Union(1, Box::new(Value::String(s.clone()))),
            None => Value::Union(0, Box::new(Value::Null)),
        };
        Ok(Value::Record(vec![
            ("topic".into(), Value::String(origin.topic.to_owned())),
            ("partition".into(), Value::Int(origin.partition)),
            ("offset".into(), Value::Long(origin.offset)),
            (
                "timestamp".into(),
                match origin.timestamp_ms {
                    Some(ms) => Value::Union(1, Box::new(Value::TimestampMillis(ms))),
                    None => Value::Union(0, Box::new(Value::Null)),
                },
            ),
            ("id".into(), Value::String(event.id.clone())),
            ("type".into(), Value::String(event.event_type.clone())),
            ("source".into(), Value::String(event.source.clone())),
            ("subject".into(), optional_string(&event.subject)),
            ("tenant".into(), optional_string(&event.tenant)),
            ("data".into(), data),
        ]))
    }
}

/// An object container file being written.
pub struct AvroExport<'s, W: Write> {
    export: &'s ExportSchema,
    writer: apache_avro::Writer<'s, W>,
}

impl<W: Write> AvroExport<'_, W> {
    /// Appends one event (validated against the export schema).
    pub fn append(&mut self, origin: Origin<'_>, event: &Event) -> Result<(), ExportError> {
        let record = self.export.record(origin, event)?;
        self.writer
            .append_value_ref(&record)
            .map_err(|e| ExportError::Write(e.to_string()))?;
        Ok(())
    }

    /// Writes the buffered block out, so that the file holds every record appended so far.
    pub fn flush(&mut self) -> Result<(), ExportError> {
        self.writer
            .flush()
            .map(drop)
            .map_err(|e| ExportError::Write(e.to_string()))
    }

    /// Flushes and hands back the output.
    pub fn finish(self) -> Result<W, ExportError> {
        self.writer
            .into_inner()
            .map_err(|e| ExportError::Write(e.to_string()))
    }
}
