//! Avro values rendered as the JSON that humans and webhook receivers read.
//!
//! Rules: decimals become strings with exactly the schema's scale (`"10.05"`, never a float
//! that loses cents); `timestamp-*` become RFC 3339 in UTC (`2026-12-03T10:15:30.123Z`);
//! `local-timestamp-*` the same without the zone; `date` is `YYYY-MM-DD`; bytes and fixed are
//! base64; unions are unwrapped to their value; enums are their symbol; NaN and infinities,
//! which JSON cannot hold, become the strings `"NaN"`, `"Infinity"`, `"-Infinity"`.

use apache_avro::Schema;
use apache_avro::schema::DecimalSchema;
use apache_avro::types::Value;
use base64::Engine;
use chrono::{DateTime, NaiveDate, NaiveTime, SecondsFormat};
use num_bigint::BigInt;
use serde_json::{Map, Number, Value as Json};

use crate::schema::SchemaEntry;

/// Renders `value`, read with `schema` (a part of `entry`'s schema), as JSON.
pub fn to_json(entry: &SchemaEntry, schema: &Schema, value: &Value) -> Json {
    let schema = entry.resolve(schema);
    match value {
        Value::Null => Json::Null,
        Value::Boolean(b) => Json::Bool(*b),
        Value::Int(i) => Json::from(*i),
        Value::Long(l) => Json::from(*l),
        Value::Float(f) => float(f64::from(*f)),
        Value::Double(d) => float(*d),
        Value::Bytes(bytes) => match schema {
            Schema::Decimal(decimal) => decimal_json(decimal, bytes),
            _ => base64_json(bytes),
        },
        Value::Fixed(_, bytes) => match schema {
            Schema::Decimal(decimal) => decimal_json(decimal, bytes),
            _ => base64_json(bytes),
        },
        Value::String(s) => Json::String(s.clone()),
        Value::Enum(_, symbol) => Json::String(symbol.clone()),
        Value::Union(index, inner) => {
            let branch = match schema {
                Schema::Union(union) => union.variants().get(*index as usize).unwrap_or(schema),
                other => other,
            };
            to_json(entry, branch, inner)
        }
        Value::Array(items) => {
            let item_schema = match schema {
                Schema::Array(array) => &*array.items,
                other => other,
            };
            Json::Array(
                items
                    .iter()
                    .map(|v| to_json(entry, item_schema, v))
                    .collect(),
            )
        }
        Value::Map(entries) => {
            let value_schema = match schema {
                Schema::Map(map) => &*map.types,
                other => other,
            };
            // Sorted, so that the same value always renders to the same bytes (signatures and
            // deduplication downstream depend on that).
            let mut keys: Vec<&String> = entries.keys().collect();
            keys.sort();
            Json::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), to_json(entry, value_schema, &entries[k])))
                    .collect(),
            )
        }
        Value::Record(fields) => {
            let mut object = Map::with_capacity(fields.len());
            for (position, (name, field_value)) in fields.iter().enumerate() {
                let field_schema = match schema {
                    // Decoded records hold their fields in schema order, so the field at the
                    // same position is nearly always the one; the name lookup (a hash per
                    // field) is the fallback.
                    Schema::Record(record) => record
                        .fields
                        .get(position)
                        .filter(|f| &f.name == name)
                        .or_else(|| record.lookup.get(name).and_then(|i| record.fields.get(*i)))
                        .map(|f| &f.schema),
                    _ => None,
                };
                let rendered = match field_schema {
                    Some(s) => to_json(entry, s, field_value),
                    None => to_json(entry, &Schema::Null, field_value),
                };
                object.insert(name.clone(), rendered);
            }
            Json::Object(object)
        }
        Value::Date(days) => NaiveDate::from_num_days_from_ce_opt(*days + UNIX_EPOCH_DAYS_FROM_CE)
            .map(|d| Json::String(d.format("%Y-%m-%d").to_string()))
            .unwrap_or(Json::from(*days)),
        Value::Decimal(decimal) => match schema {
            Schema::Decimal(decimal_schema) => Json::String(format_decimal(
                &BigInt::from(decimal.clone()),
                decimal_schema.scale,
            )),
            _ => Json::String(BigInt::from(decimal.clone()).to_string()),
        },
        Value::BigDecimal(big) => Json::String(big.to_string()),
        Value::TimeMillis(ms) => time_of_day(i64::from(*ms) * 1_000_000),
        Value::TimeMicros(us) => time_of_day(us.saturating_mul(1_000)),
        Value::TimestampMillis(ms) => timestamp(
            DateTime::from_timestamp_millis(*ms),
            SecondsFormat::Millis,
            true,
        ),
        Value::TimestampMicros(us) => timestamp(
            DateTime::from_timestamp_micros(*us),
            SecondsFormat::Micros,
            true,
        ),
        Value::TimestampNanos(ns) => timestamp(
            Some(DateTime::from_timestamp_nanos(*ns)),
            SecondsFormat::Nanos,
            true,
        ),
        Value::LocalTimestampMillis(ms) => timestamp(
            DateTime::from_timestamp_millis(*ms),
            SecondsFormat::Millis,
            false,
        ),
        Value::LocalTimestampMicros(us) => timestamp(
            DateTime::from_timestamp_micros(*us),
            SecondsFormat::Micros,
            false,
        ),
        Value::LocalTimestampNanos(ns) => timestamp(
            Some(DateTime::from_timestamp_nanos(*ns)),
            SecondsFormat::Nanos,
            false,
        ),
        Value::Duration(duration) => {
            let mut object = Map::new();
            object.insert("months".into(), Json::from(u32::from(duration.months())));
            object.insert("days".into(), Json::from(u32::from(duration.days())));
            object.insert("millis".into(), Json::from(u32::from(duration.millis())));
            Json::Object(object)
        }
        Value::Uuid(uuid) => Json::String(uuid.to_string()),
    }
}

/// Days from 0001-01-01 (chrono's day 1 of the common era) to 1970-01-01.
const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;

fn float(f: f64) -> Json {
    match Number::from_f64(f) {
        Some(n) => Json::Number(n),
        None if f.is_nan() => Json::String("NaN".into()),
        None if f > 0.0 => Json::String("Infinity".into()),
        None => Json::String("-Infinity".into()),
    }
}

fn base64_json(bytes: &[u8]) -> Json {
    Json::String(base64::engine::general_purpose::STANDARD.encode(bytes))
}

fn decimal_json(decimal: &DecimalSchema, bytes: &[u8]) -> Json {
    Json::String(format_decimal(
        &BigInt::from_signed_bytes_be(bytes),
        decimal.scale,
    ))
}

fn time_of_day(nanos: i64) -> Json {
    let secs = nanos.div_euclid(1_000_000_000);
    let sub = nanos.rem_euclid(1_000_000_000);
    NaiveTime::from_num_seconds_from_midnight_opt(
        u32::try_from(secs).unwrap_or(0),
        u32::try_from(sub).unwrap_or(0),
    )
    .map(|t| Json::String(t.format("%H:%M:%S%.f").to_string()))
    .unwrap_or(Json::from(nanos))
}

fn timestamp(at: Option<DateTime<chrono::Utc>>, format: SecondsFormat, zoned: bool) -> Json {
    match at {
        Some(at) if zoned => Json::String(at.to_rfc3339_opts(format, true)),
        Some(at) => {
            let text = at.naive_utc().format(match format {
                SecondsFormat::Millis => "%Y-%m-%dT%H:%M:%S%.3f",
                SecondsFormat::Micros => "%Y-%m-%dT%H:%M:%S%.6f",
                _ => "%Y-%m-%dT%H:%M:%S%.9f",
            });
            Json::String(text.to_string())
        }
        None => Json::Null,
    }
}

/// Writes an unscaled integer with `scale` digits after the decimal point: (1005, 2) → "10.05",
/// (-5, 2) → "-0.05", (7, 0) → "7".
pub fn format_decimal(unscaled: &BigInt, scale: usize) -> String {
    // Amounts fit in 128 bits; formatting a u128 is several times cheaper than BigUint's
    // general radix conversion, which showed in the decode benchmark.
    let (negative, digits) = match i128::try_from(unscaled) {
        Ok(small) => (small < 0, small.unsigned_abs().to_string()),
        Err(_) => (
            unscaled.sign() == num_bigint::Sign::Minus,
            unscaled.magnitude().to_string(),
        ),
    };
    let mut out = String::with_capacity(digits.len() + scale + 3);
    if negative {
        out.push('-');
    }
    if scale == 0 {
        out.push_str(&digits);
        return out;
    }
    if digits.len() <= scale {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', scale - digits.len()));
        out.push_str(&digits);
    } else {
        let (whole, fraction) = digits.split_at(digits.len() - scale);
        out.push_str(whole);
        out.push('.');
        out.push_str(fraction);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_keep_their_scale() {
        assert_eq!(format_decimal(&BigInt::from(1005), 2), "10.05");
        assert_eq!(format_decimal(&BigInt::from(-5), 2), "-0.05");
        assert_eq!(format_decimal(&BigInt::from(0), 2), "0.00");
        assert_eq!(format_decimal(&BigInt::from(7), 0), "7");
        assert_eq!(format_decimal(&BigInt::from(-1234567), 3), "-1234.567");
    }

    #[test]
    fn logical_types_render_for_humans() {
        let entry = SchemaEntry::parse(
            r#"{"type":"record","name":"R","fields":[
                {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},
                {"name":"day","type":{"type":"int","logicalType":"date"}},
                {"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":9,"scale":2}},
                {"name":"raw","type":"bytes"},
                {"name":"maybe","type":["null","string"]},
                {"name":"ratio","type":"double"}
            ]}"#,
        )
        .expect("parses");
        let value = Value::Record(vec![
            ("at".into(), Value::TimestampMillis(1_764_756_930_123)),
            ("day".into(), Value::Date(20_425)),
            (
                "amount".into(),
                Value::Decimal(apache_avro::Decimal::from(vec![0x03, 0xED])),
            ),
            ("raw".into(), Value::Bytes(vec![0xde, 0xad])),
            (
                "maybe".into(),
                Value::Union(1, Box::new(Value::String("x".into()))),
            ),
            ("ratio".into(), Value::Double(f64::NAN)),
        ]);
        let json = to_json(&entry, entry.schema(), &value);
        assert_eq!(
            json,
            serde_json::json!({
                "at": "2025-12-03T10:15:30.123Z",
                "day": "2025-12-03",
                "amount": "10.05",
                "raw": "3q0=",
                "maybe": "x",
                "ratio": "NaN"
            })
        );
    }
}
