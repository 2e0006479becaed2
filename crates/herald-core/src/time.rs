//! Timestamps as Herald's records carry them: epoch milliseconds in Rust, `timestamp-millis`
//! in Avro, RFC 3339 in the JSON people read.

use serde::{Deserialize, Deserializer};

/// Deserializes epoch milliseconds from a number or an RFC 3339 string: Herald renders Avro
/// timestamps as RFC 3339 for people, and reads either back.
pub fn epoch_ms<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Millis(i64),
        Text(String),
    }
    match Either::deserialize(deserializer)? {
        Either::Millis(ms) => Ok(ms),
        Either::Text(text) => chrono::DateTime::parse_from_rfc3339(&text)
            .map(|t| t.timestamp_millis())
            .map_err(|e| serde::de::Error::custom(format!("{text:?} is not RFC 3339: {e}"))),
    }
}

/// [`epoch_ms`] for an optional timestamp (`null` stays `None`).
pub fn optional_epoch_ms<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    struct Wrapped(#[serde(deserialize_with = "epoch_ms")] i64);
    Ok(Option::<Wrapped>::deserialize(deserializer)?.map(|Wrapped(ms)| ms))
}

/// Now, in epoch milliseconds.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
