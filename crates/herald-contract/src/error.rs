//! Typed decode errors: the router branches on [`DecodeErrorKind::is_retryable`] to choose
//! between pausing (the registry is down) and dead-lettering (the record itself is bad).

use std::fmt;

/// Where a record came from, so that every error names it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Origin {
    /// The topic the record was read from.
    pub topic: String,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]@{}", self.topic, self.partition, self.offset)
    }
}

/// Why a record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeErrorKind {
    /// The payload is empty (and is not a tombstone the caller expected).
    #[error("the payload is empty")]
    Empty,
    /// The first bytes match no framing Herald reads.
    #[error(
        "unknown framing: first byte 0x{first:02x} is neither Confluent's magic byte 0x00, \
         Avro single-object's C3 01, nor the start of a JSON object"
    )]
    BadMagic {
        /// The first byte of the payload.
        first: u8,
    },
    /// The payload ends inside its framing header or inside the datum.
    #[error("the payload is truncated: {detail}")]
    Truncated {
        /// What was being read when the bytes ran out.
        detail: String,
    },
    /// The registry has no schema with this id.
    #[error("the schema registry has no schema with id {id}")]
    UnknownSchemaId {
        /// The id from the Confluent header.
        id: u32,
    },
    /// No known schema has this single-object fingerprint.
    #[error("no known schema has the CRC-64-AVRO fingerprint {fingerprint:016x}")]
    UnknownFingerprint {
        /// The fingerprint from the single-object header.
        fingerprint: u64,
    },
    /// The registry returned a schema that does not parse.
    #[error("the writer schema {id} does not parse: {detail}")]
    InvalidWriterSchema {
        /// The schema id.
        id: u32,
        /// The parser's message.
        detail: String,
    },
    /// The bytes do not form a datum of the writer schema.
    #[error("the Avro datum is corrupt: {detail}")]
    CorruptDatum {
        /// What the Avro decoder reported.
        detail: String,
    },
    /// The writer schema cannot be resolved to the reader schema.
    #[error("the writer schema cannot be read as {reader}: {detail}")]
    SchemaMismatch {
        /// The reader schema's full name.
        reader: String,
        /// What the resolution reported.
        detail: String,
    },
    /// The payload claims to be JSON but is not.
    #[error("the JSON payload is invalid: {detail}")]
    InvalidJson {
        /// The JSON parser's message.
        detail: String,
    },
    /// A CloudEvents attribute is missing or malformed.
    #[error("invalid CloudEvents metadata: {detail}")]
    InvalidCloudEvent {
        /// Which attribute and what is wrong with it.
        detail: String,
    },
    /// The schema registry could not be reached or failed; the same record may decode later.
    #[error("the schema registry is unavailable: {detail}")]
    RegistryUnavailable {
        /// The transport error or HTTP status.
        detail: String,
    },
}

impl DecodeErrorKind {
    /// Whether trying the same record again later may succeed. Retryable errors pause the
    /// consumer; all others send the record to a dead-letter topic at once.
    pub fn is_retryable(&self) -> bool {
        matches!(self, DecodeErrorKind::RegistryUnavailable { .. })
    }

    /// A short, bounded label for metrics and the `herald-error-kind` header.
    pub fn label(&self) -> &'static str {
        match self {
            DecodeErrorKind::Empty => "empty",
            DecodeErrorKind::BadMagic { .. } => "bad_magic",
            DecodeErrorKind::Truncated { .. } => "truncated",
            DecodeErrorKind::UnknownSchemaId { .. } => "unknown_schema_id",
            DecodeErrorKind::UnknownFingerprint { .. } => "unknown_fingerprint",
            DecodeErrorKind::InvalidWriterSchema { .. } => "invalid_writer_schema",
            DecodeErrorKind::CorruptDatum { .. } => "corrupt_datum",
            DecodeErrorKind::SchemaMismatch { .. } => "schema_mismatch",
            DecodeErrorKind::InvalidJson { .. } => "invalid_json",
            DecodeErrorKind::InvalidCloudEvent { .. } => "invalid_cloudevent",
            DecodeErrorKind::RegistryUnavailable { .. } => "registry_unavailable",
        }
    }
}

/// A decode failure of one record, naming the record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot decode {origin}: {kind}")]
pub struct DecodeError {
    /// Where the record came from.
    pub origin: Origin,
    /// What went wrong.
    pub kind: DecodeErrorKind,
}
