//! Herald's event contract: how events and Herald's own records are framed, encoded, decoded
//! and described, independent of how they travel.
//!
//! # Layout
//! - [`framing`]: Confluent wire format, Avro single-object encoding and JSON, told apart by
//!   their first bytes.
//! - [`schema`]: parsed schemas with their fingerprint and event type.
//! - [`catalog`]: the local schemas (`schemas/`), indexed by name, event type and fingerprint.
//! - [`registry`]: a Confluent-compatible schema registry client with a bounded cache.
//! - [`decode`]: record bytes and headers to an [`decode::Event`], with writer→reader
//!   schema resolution.
//! - [`encode`]: JSON documents to Avro datums, with errors that name the field.
//! - [`json`]: Avro values to the JSON people and webhooks read.
//! - [`export`]: decoded events written to Avro object container files for analysts.
//! - [`cloudevents`]: the CloudEvents Kafka binding, binary and structured mode.
//! - [`records`]: Herald's own records in single-object encoding, schemas built in.
//! - [`subjects`]: registry subjects under TopicNameStrategy or RecordNameStrategy.
//! - [`error`]: decode errors typed by what the caller should do (retry or dead-letter).
//!
//! # Architecture invariant
//! The only crate that uses apache-avro, and it does not touch Kafka: it sees bytes and
//! headers, never a consumer or producer.

pub mod catalog;
pub mod cloudevents;
pub mod decode;
pub mod encode;
pub mod error;
pub mod export;
pub mod framing;
pub mod json;
pub mod json_schema;
pub mod records;
pub mod registry;
pub mod schema;
pub mod subjects;

#[cfg(test)]
mod properties;

pub use catalog::Catalog;
pub use cloudevents::Attributes;
pub use decode::{Decoder, Event, EventData, RawRecord};
pub use error::{DecodeError, DecodeErrorKind, Origin};
pub use records::{RecordCodec, RecordError};
pub use registry::{RegistryClient, RegistryConfig, RegistryError};
pub use schema::SchemaEntry;
