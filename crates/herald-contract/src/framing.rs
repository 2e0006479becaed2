//! The byte-level framings an event value can arrive in, told apart by their first bytes.
//!
//! - Confluent wire format: `00`, a 4-byte big-endian schema id, the Avro datum.
//! - Avro single-object encoding: `C3 01`, the 8-byte little-endian CRC-64-AVRO fingerprint
//!   of the writer schema's canonical form, the Avro datum.
//! - JSON: a JSON object (optionally after whitespace), e.g. a CloudEvents structured-mode
//!   envelope or a plain JSON event.

use crate::error::DecodeErrorKind;

/// Confluent's magic byte.
pub const CONFLUENT_MAGIC: u8 = 0x00;
/// The two marker bytes of Avro single-object encoding.
pub const SINGLE_OBJECT_MAGIC: [u8; 2] = [0xC3, 0x01];

/// How a payload is framed, and what its header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Confluent wire format with this schema id.
    Confluent {
        /// The registry's id of the writer schema.
        schema_id: u32,
    },
    /// Avro single-object encoding with this writer-schema fingerprint.
    SingleObject {
        /// CRC-64-AVRO (Rabin) fingerprint of the writer schema's canonical form.
        fingerprint: u64,
    },
    /// A JSON document.
    Json,
}

impl Framing {
    /// A short, bounded label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Framing::Confluent { .. } => "confluent",
            Framing::SingleObject { .. } => "single_object",
            Framing::Json => "json",
        }
    }
}

/// Reads the framing header and returns it with the body that follows (the Avro datum, or the
/// whole JSON text).
pub fn split(payload: &[u8]) -> Result<(Framing, &[u8]), DecodeErrorKind> {
    match payload {
        [] => Err(DecodeErrorKind::Empty),
        [CONFLUENT_MAGIC, rest @ ..] => {
            let (id, datum) =
                rest.split_first_chunk::<4>()
                    .ok_or_else(|| DecodeErrorKind::Truncated {
                        detail: format!(
                            "a Confluent header needs 5 bytes, the payload has {}",
                            payload.len()
                        ),
                    })?;
            Ok((
                Framing::Confluent {
                    schema_id: u32::from_be_bytes(*id),
                },
                datum,
            ))
        }
        [0xC3, 0x01, rest @ ..] => {
            let (fingerprint, datum) =
                rest.split_first_chunk::<8>()
                    .ok_or_else(|| DecodeErrorKind::Truncated {
                        detail: format!(
                            "a single-object header needs 10 bytes, the payload has {}",
                            payload.len()
                        ),
                    })?;
            Ok((
                Framing::SingleObject {
                    fingerprint: u64::from_le_bytes(*fingerprint),
                },
                datum,
            ))
        }
        _ => {
            let first_visible = payload.iter().find(|b| !b.is_ascii_whitespace());
            match first_visible {
                Some(b'{') => Ok((Framing::Json, payload)),
                _ => Err(DecodeErrorKind::BadMagic { first: payload[0] }),
            }
        }
    }
}

/// Frames an Avro datum in Confluent wire format.
pub fn confluent(schema_id: u32, datum: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + datum.len());
    out.push(CONFLUENT_MAGIC);
    out.extend_from_slice(&schema_id.to_be_bytes());
    out.extend_from_slice(datum);
    out
}

/// Frames an Avro datum in single-object encoding.
pub fn single_object(fingerprint: u64, datum: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(10 + datum.len());
    out.extend_from_slice(&SINGLE_OBJECT_MAGIC);
    out.extend_from_slice(&fingerprint.to_le_bytes());
    out.extend_from_slice(datum);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_framing_is_recognised_by_its_header() {
        assert_eq!(
            split(&[0, 0, 0, 1, 2, 9]),
            Ok((Framing::Confluent { schema_id: 258 }, &[9u8][..]))
        );
        let so = single_object(0x0102_0304_0506_0708, &[7]);
        assert_eq!(&so[..4], &[0xC3, 0x01, 0x08, 0x07]);
        assert_eq!(
            split(&so),
            Ok((
                Framing::SingleObject {
                    fingerprint: 0x0102_0304_0506_0708
                },
                &[7u8][..]
            ))
        );
        assert_eq!(split(b" \n{\"a\":1}").map(|(f, _)| f), Ok(Framing::Json));
    }

    #[test]
    fn short_headers_and_unknown_bytes_are_refused() {
        assert_eq!(split(&[]), Err(DecodeErrorKind::Empty));
        assert!(matches!(
            split(&[0, 0, 1]),
            Err(DecodeErrorKind::Truncated { .. })
        ));
        assert!(matches!(
            split(&[0xC3, 0x01, 1, 2]),
            Err(DecodeErrorKind::Truncated { .. })
        ));
        assert_eq!(
            split(&[0x7f, 1]),
            Err(DecodeErrorKind::BadMagic { first: 0x7f })
        );
        assert_eq!(
            split(b"[1]"),
            Err(DecodeErrorKind::BadMagic { first: b'[' })
        );
    }
}
