//! JSON documents turned into Avro values of a given schema, for producers that hold JSON
//! (`herald produce`, the admin API's ingest endpoint).
//!
//! Accepts what [`crate::json::to_json`] emits, so a rendered event encodes back to the same
//! datum: decimals as strings or numbers, timestamps as RFC 3339 or epoch numbers, dates as
//! `YYYY-MM-DD`, bytes as base64, unions as their plain value. Every error names the field
//! path (`$.items[2].unit_price`) so that a person can fix the document.

use std::collections::HashMap;

use apache_avro::Schema;
use apache_avro::schema::{DecimalSchema, InnerDecimalSchema};
use apache_avro::types::Value;
use base64::Engine;
use chrono::{DateTime, NaiveDate};
use num_bigint::BigInt;
use serde_json::Value as Json;

use crate::schema::{SchemaEntry, record_event_type};

/// A JSON document that does not fit the schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct EncodeError {
    /// Where in the document: `$`, `$.field`, `$.items[0].sku`.
    pub path: String,
    /// What is wrong, in words a person understands.
    pub message: String,
}

pub(crate) fn fail<T>(path: &str, message: impl Into<String>) -> Result<T, EncodeError> {
    Err(EncodeError {
        path: path.to_owned(),
        message: message.into(),
    })
}

/// Converts `json` to an Avro value of `entry`'s schema.
pub fn from_json(entry: &SchemaEntry, json: &Json) -> Result<Value, EncodeError> {
    convert(entry, entry.schema(), json, "$")
}

/// Encodes the data of an event of `event_type` with `entry`, the schema registered for its
/// subject: a record standing for that type, or a union with one branch that does (the branch
/// is chosen by type, never by which branch happens to accept the document).
pub fn encode_event(
    entry: &SchemaEntry,
    event_type: &str,
    json: &Json,
) -> Result<Vec<u8>, EncodeError> {
    let stands_for =
        |schema: &Schema| record_event_type(entry.resolve(schema)).as_deref() == Some(event_type);
    let value = match entry.schema() {
        Schema::Union(union) => {
            let (index, branch) = union
                .variants()
                .iter()
                .enumerate()
                .find(|(_, branch)| stands_for(branch))
                .ok_or_else(|| EncodeError {
                    path: "$".to_owned(),
                    message: format!("the schema has no record for event type {event_type:?}"),
                })?;
            Value::Union(index as u32, Box::new(convert(entry, branch, json, "$")?))
        }
        record if stands_for(record) => convert(entry, record, json, "$")?,
        _ => {
            return fail(
                "$",
                format!("the schema's record does not stand for event type {event_type:?}"),
            );
        }
    };
    encode_value(entry, value)
}

/// Converts and encodes `json` to an Avro datum (no framing) of `entry`'s schema.
pub fn encode_json(entry: &SchemaEntry, json: &Json) -> Result<Vec<u8>, EncodeError> {
    let value = from_json(entry, json)?;
    encode_value(entry, value)
}

/// Encodes a value of `entry`'s schema to an Avro datum (no framing).
pub fn encode_value(entry: &SchemaEntry, value: Value) -> Result<Vec<u8>, EncodeError> {
    apache_avro::writer::datum::GenericDatumWriter::builder(entry.schema())
        .build()
        .and_then(|writer| writer.write_value_to_vec(value))
        .or_else(|e| fail("$", format!("the value does not fit the schema: {e}")))
}

fn convert(
    entry: &SchemaEntry,
    schema: &Schema,
    json: &Json,
    path: &str,
) -> Result<Value, EncodeError> {
    let schema = entry.resolve(schema);
    match schema {
        Schema::Null => match json {
            Json::Null => Ok(Value::Null),
            other => fail(path, format!("expected null, found {}", kind(other))),
        },
        Schema::Boolean => json.as_bool().map(Value::Boolean).map_or_else(
            || fail(path, format!("expected a boolean, found {}", kind(json))),
            Ok,
        ),
        Schema::Int => integer(json, path)
            .and_then(|n| {
                i32::try_from(n)
                    .or_else(|_| fail(path, format!("{n} does not fit in a 32-bit int")))
            })
            .map(Value::Int),
        Schema::Long => integer(json, path).map(Value::Long),
        Schema::Float => number(json, path).map(|f| Value::Float(f as f32)),
        Schema::Double => number(json, path).map(Value::Double),
        Schema::String => string(json, path).map(|s| Value::String(s.to_owned())),
        Schema::Bytes => base64_bytes(json, path).map(Value::Bytes),
        Schema::Fixed(fixed) => {
            let bytes = base64_bytes(json, path)?;
            if bytes.len() != fixed.size {
                return fail(
                    path,
                    format!("expected {} bytes, found {}", fixed.size, bytes.len()),
                );
            }
            Ok(Value::Fixed(fixed.size, bytes))
        }
        Schema::Enum(enumeration) => {
            let symbol = string(json, path)?;
            match enumeration.symbols.iter().position(|s| s == symbol) {
                Some(index) => Ok(Value::Enum(index as u32, symbol.to_owned())),
                None => fail(
                    path,
                    format!(
                        "{symbol:?} is not one of {}",
                        enumeration.symbols.join(", ")
                    ),
                ),
            }
        }
        Schema::Array(array) => match json {
            Json::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| convert(entry, &array.items, item, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()
                .map(Value::Array),
            other => fail(path, format!("expected an array, found {}", kind(other))),
        },
        Schema::Map(map) => match json {
            Json::Object(entries) => entries
                .iter()
                .map(|(k, v)| {
                    Ok((
                        k.clone(),
                        convert(entry, &map.types, v, &format!("{path}.{k}"))?,
                    ))
                })
                .collect::<Result<HashMap<_, _>, _>>()
                .map(Value::Map),
            other => fail(path, format!("expected an object, found {}", kind(other))),
        },
        Schema::Union(union) => {
            let variants = union.variants();
            if json.is_null() {
                return match variants.iter().position(|v| matches!(v, Schema::Null)) {
                    Some(index) => Ok(Value::Union(index as u32, Box::new(Value::Null))),
                    None => fail(path, "null is not allowed here"),
                };
            }
            let mut reasons = Vec::new();
            for (index, variant) in variants.iter().enumerate() {
                if matches!(variant, Schema::Null) {
                    continue;
                }
                match convert(entry, variant, json, path) {
                    Ok(value) => return Ok(Value::Union(index as u32, Box::new(value))),
                    Err(e) => reasons.push(e.message),
                }
            }
            fail(
                path,
                format!("matches no branch of the union: {}", reasons.join("; ")),
            )
        }
        Schema::Record(record) => {
            let Json::Object(object) = json else {
                return fail(path, format!("expected an object, found {}", kind(json)));
            };
            if let Some(unknown) = object.keys().find(|k| !record.lookup.contains_key(*k)) {
                return fail(&format!("{path}.{unknown}"), "is not a field of the schema");
            }
            let mut fields = Vec::with_capacity(record.fields.len());
            for field in &record.fields {
                let field_path = format!("{path}.{}", field.name);
                let value = match (object.get(&field.name), &field.default) {
                    (Some(given), _) => convert(entry, &field.schema, given, &field_path)?,
                    (None, Some(default)) => {
                        default_value(entry, &field.schema, default, &field_path)?
                    }
                    (None, None) => return fail(&field_path, "is required"),
                };
                fields.push((field.name.clone(), value));
            }
            Ok(Value::Record(fields))
        }
        Schema::Decimal(decimal) => decimal_value(decimal, json, path),
        Schema::BigDecimal => {
            let text = decimal_text(json, path)?;
            text.parse::<apache_avro::BigDecimal>()
                .map(Value::BigDecimal)
                .or_else(|e| fail(path, format!("{text:?} is not a decimal: {e}")))
        }
        Schema::Uuid(_) => {
            let text = string(json, path)?;
            text.parse::<apache_avro::Uuid>()
                .map(Value::Uuid)
                .or_else(|e| fail(path, format!("{text:?} is not a UUID: {e}")))
        }
        Schema::Date => match json {
            Json::String(text) => NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map(|d| Value::Date((d - NaiveDate::default()).num_days() as i32))
                .or_else(|e| fail(path, format!("{text:?} is not a YYYY-MM-DD date: {e}"))),
            other => integer(other, path)
                .and_then(|n| {
                    i32::try_from(n).or_else(|_| fail(path, "the day number is out of range"))
                })
                .map(Value::Date),
        },
        Schema::TimeMillis => integer(json, path)
            .and_then(|n| i32::try_from(n).or_else(|_| fail(path, "out of range")))
            .map(Value::TimeMillis),
        Schema::TimeMicros => integer(json, path).map(Value::TimeMicros),
        Schema::TimestampMillis => {
            instant(json, path, |at| at.timestamp_millis(), |n| n).map(Value::TimestampMillis)
        }
        Schema::TimestampMicros => {
            instant(json, path, |at| at.timestamp_micros(), |n| n).map(Value::TimestampMicros)
        }
        Schema::TimestampNanos => instant(
            json,
            path,
            |at| at.timestamp_nanos_opt().unwrap_or(i64::MAX),
            |n| n,
        )
        .map(Value::TimestampNanos),
        Schema::LocalTimestampMillis => integer(json, path).map(Value::LocalTimestampMillis),
        Schema::LocalTimestampMicros => integer(json, path).map(Value::LocalTimestampMicros),
        Schema::LocalTimestampNanos => integer(json, path).map(Value::LocalTimestampNanos),
        Schema::Duration(_) => fail(path, "the duration logical type is not accepted from JSON"),
        Schema::Ref { name } => fail(path, format!("unknown named type {}", name.fullname(None))),
    }
}

/// A field default is JSON in the schema; for a union it applies to the first branch.
fn default_value(
    entry: &SchemaEntry,
    schema: &Schema,
    default: &Json,
    path: &str,
) -> Result<Value, EncodeError> {
    match entry.resolve(schema) {
        Schema::Union(union) => {
            let first = union.variants().first().ok_or_else(|| EncodeError {
                path: path.to_owned(),
                message: "the union has no branches".to_owned(),
            })?;
            convert(entry, first, default, path).map(|v| Value::Union(0, Box::new(v)))
        }
        other => convert(entry, other, default, path),
    }
}

fn kind(json: &Json) -> &'static str {
    match json {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

fn integer(json: &Json, path: &str) -> Result<i64, EncodeError> {
    match json {
        Json::Number(n) => n
            .as_i64()
            .map_or_else(|| fail(path, format!("expected an integer, found {n}")), Ok),
        other => fail(path, format!("expected an integer, found {}", kind(other))),
    }
}

fn number(json: &Json, path: &str) -> Result<f64, EncodeError> {
    match json {
        Json::Number(n) => n
            .as_f64()
            .map_or_else(|| fail(path, "not a finite number"), Ok),
        Json::String(s) if s == "NaN" => Ok(f64::NAN),
        Json::String(s) if s == "Infinity" => Ok(f64::INFINITY),
        Json::String(s) if s == "-Infinity" => Ok(f64::NEG_INFINITY),
        other => fail(path, format!("expected a number, found {}", kind(other))),
    }
}

fn string<'a>(json: &'a Json, path: &str) -> Result<&'a str, EncodeError> {
    json.as_str().map_or_else(
        || fail(path, format!("expected a string, found {}", kind(json))),
        Ok,
    )
}

fn base64_bytes(json: &Json, path: &str) -> Result<Vec<u8>, EncodeError> {
    let text = string(json, path)?;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .or_else(|e| fail(path, format!("expected base64: {e}")))
}

fn instant(
    json: &Json,
    path: &str,
    from_rfc3339: impl Fn(DateTime<chrono::FixedOffset>) -> i64,
    from_number: impl Fn(i64) -> i64,
) -> Result<i64, EncodeError> {
    match json {
        Json::String(text) => DateTime::parse_from_rfc3339(text)
            .map(from_rfc3339)
            .or_else(|e| fail(path, format!("{text:?} is not an RFC 3339 timestamp: {e}"))),
        other => integer(other, path).map(from_number),
    }
}

fn decimal_text(json: &Json, path: &str) -> Result<String, EncodeError> {
    match json {
        Json::String(s) => Ok(s.trim().to_owned()),
        Json::Number(n) => Ok(n.to_string()),
        other => fail(
            path,
            format!(
                "expected a decimal as a string or number, found {}",
                kind(other)
            ),
        ),
    }
}

/// Parses a decimal text to the unscaled integer of `scale`, refusing lost precision.
pub fn parse_decimal(text: &str, scale: usize, precision: usize) -> Result<BigInt, String> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let valid = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !valid(whole) || !valid(fraction) {
        return Err(format!("{text:?} is not a plain decimal number"));
    }
    let significant_fraction = fraction.trim_end_matches('0');
    if significant_fraction.len() > scale {
        return Err(format!(
            "{text:?} has {} decimal places, the schema allows {scale}",
            significant_fraction.len()
        ));
    }
    let mut digits = String::with_capacity(whole.len() + scale);
    digits.push_str(whole);
    digits.push_str(significant_fraction);
    digits.extend(std::iter::repeat_n('0', scale - significant_fraction.len()));
    let significant = digits.trim_start_matches('0');
    if significant.len() > precision {
        return Err(format!(
            "{text:?} needs more than the schema's {precision} digits of precision"
        ));
    }
    let magnitude: BigInt = if significant.is_empty() {
        BigInt::from(0)
    } else {
        significant.parse().map_err(|e| format!("{text:?}: {e}"))?
    };
    Ok(if negative { -magnitude } else { magnitude })
}

fn decimal_value(decimal: &DecimalSchema, json: &Json, path: &str) -> Result<Value, EncodeError> {
    let text = decimal_text(json, path)?;
    let unscaled =
        parse_decimal(&text, decimal.scale, decimal.precision).or_else(|m| fail(path, m))?;
    let mut bytes = unscaled.to_signed_bytes_be();
    if let InnerDecimalSchema::Fixed(fixed) = &decimal.inner {
        if bytes.len() > fixed.size {
            return fail(
                path,
                format!("{text:?} does not fit in {} bytes", fixed.size),
            );
        }
        // Fixed-size decimals are sign-extended to the fixed's size.
        let fill = if unscaled.sign() == num_bigint::Sign::Minus {
            0xFF
        } else {
            0x00
        };
        let mut extended = vec![fill; fixed.size - bytes.len()];
        extended.append(&mut bytes);
        bytes = extended;
    }
    Ok(Value::Decimal(apache_avro::Decimal::from(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> SchemaEntry {
        SchemaEntry::parse(
            r#"{"type":"record","name":"R","fields":[
                {"name":"id","type":"string"},
                {"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":6,"scale":2}},
                {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},
                {"name":"kind","type":{"type":"enum","name":"Kind","symbols":["A","B"]}},
                {"name":"note","type":["null","string"],"default":null},
                {"name":"items","type":{"type":"array","items":{"type":"record","name":"Item","fields":[{"name":"qty","type":"int"}]}}}
            ]}"#,
        )
        .expect("parses")
    }

    #[test]
    fn a_rendered_document_encodes_back() {
        let entry = entry();
        let doc = serde_json::json!({
            "id": "x", "amount": "10.05", "at": "2025-12-03T10:15:30.123Z", "kind": "B",
            "items": [{"qty": 2}]
        });
        let value = from_json(&entry, &doc).expect("fits");
        let back = crate::json::to_json(&entry, entry.schema(), &value);
        let mut expected = doc.clone();
        expected["note"] = Json::Null;
        assert_eq!(back, expected);
        assert!(!encode_json(&entry, &doc).expect("encodes").is_empty());
    }

    #[test]
    fn errors_name_the_field_path() {
        let entry = entry();
        let cases = [
            (
                serde_json::json!({"amount": "1", "at": 0, "kind": "A", "items": []}),
                "$.id",
                "is required",
            ),
            (
                serde_json::json!({"id": "x", "amount": "1.005", "at": 0, "kind": "A", "items": []}),
                "$.amount",
                "has 3 decimal places",
            ),
            (
                serde_json::json!({"id": "x", "amount": "1", "at": 0, "kind": "C", "items": []}),
                "$.kind",
                "is not one of A, B",
            ),
            (
                serde_json::json!({"id": "x", "amount": "1", "at": 0, "kind": "A", "items": [{"qty": "2"}]}),
                "$.items[0].qty",
                "expected an integer",
            ),
            (
                serde_json::json!({"id": "x", "amount": "1", "at": 0, "kind": "A", "items": [], "extra": 1}),
                "$.extra",
                "is not a field",
            ),
        ];
        for (doc, path, message) in cases {
            let error = from_json(&entry, &doc).expect_err("must not fit");
            assert_eq!(error.path, path, "{error}");
            assert!(error.message.contains(message), "{error}");
        }
    }

    #[test]
    fn decimals_parse_exactly() {
        assert_eq!(parse_decimal("10.05", 2, 9), Ok(BigInt::from(1005)));
        assert_eq!(parse_decimal("-0.5", 2, 9), Ok(BigInt::from(-50)));
        assert_eq!(parse_decimal("3", 2, 9), Ok(BigInt::from(300)));
        assert_eq!(parse_decimal("1.50", 1, 9), Ok(BigInt::from(15)));
        assert!(parse_decimal("1e3", 2, 9).is_err());
        assert!(parse_decimal("12345.6", 2, 6).is_err());
    }
}
