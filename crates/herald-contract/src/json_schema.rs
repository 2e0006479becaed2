//! Avro schemas described as JSON Schema (draft 2020-12), with an example document, for the
//! admin API's event-type catalogue.
//!
//! Both describe what [`crate::encode::from_json`] accepts, which is also what
//! [`crate::json::to_json`] emits: decimals as strings or numbers, timestamps as RFC 3339 or
//! epoch numbers, bytes as base64, unions as their plain value. Where the two differ (local
//! timestamps and times of day, which `to_json` writes as text but `from_json` reads only as
//! numbers) the JSON Schema follows `from_json`, because it tells producers what they may send.

use apache_avro::Schema;
use base64::Engine;
use serde_json::{Map, Value as Json, json};

use crate::schema::SchemaEntry;

/// The JSON Schema dialect the catalogue speaks.
const DIALECT: &str = "https://json-schema.org/draft/2020-12/schema";
/// How often a named type may be expanded inside itself in a JSON Schema: a recursive record
/// would otherwise never end, so references beyond this become `{}`.
const SCHEMA_NESTING: usize = 2;
/// Examples stop at the first recursion; the nullable or repeated reference stays empty.
const EXAMPLE_NESTING: usize = 1;
/// 2026-01-01T08:00:00Z, the instant every example shows, for the types read only as numbers.
const EXAMPLE_EPOCH_SECONDS: i64 = 1_767_254_400;
/// The decimal text `encode::parse_decimal` takes (`decimal_text` trims it first). ECMA-262's
/// `\d` is ASCII-only, as the parser is.
const DECIMAL_PATTERN: &str = r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)\s*$";

/// The JSON Schema (draft 2020-12) of the documents `entry`'s schema accepts from JSON.
pub fn to_json_schema(entry: &SchemaEntry) -> Json {
    let mut top = Map::new();
    top.insert("$schema".into(), json!(DIALECT));
    match describe(entry, entry.schema(), &mut Vec::new()) {
        Json::Object(object) => top.extend(object),
        other => return other,
    }
    Json::Object(top)
}

/// A deterministic example document of `entry`'s schema that [`crate::encode::from_json`]
/// accepts, with every field filled in (nullable ones too). For a union of event records it is
/// an example of the first record.
pub fn example(entry: &SchemaEntry) -> Json {
    let top = entry.schema();
    let schema = match top {
        Schema::Union(union) => union
            .variants()
            .iter()
            .map(|variant| entry.resolve(variant))
            .find(|variant| matches!(variant, Schema::Record(_)))
            .unwrap_or(top),
        other => other,
    };
    sample(entry, schema, "value", &mut Vec::new())
}

/// `path` holds the full names of the records being described around `schema`.
fn describe(entry: &SchemaEntry, schema: &Schema, path: &mut Vec<String>) -> Json {
    match schema {
        Schema::Null => json!({"type": "null"}),
        Schema::Boolean => json!({"type": "boolean"}),
        Schema::Int => json!({"type": "integer", "minimum": i32::MIN, "maximum": i32::MAX}),
        Schema::Long => json!({"type": "integer", "minimum": i64::MIN, "maximum": i64::MAX}),
        // JSON cannot hold NaN or the infinities, so they travel as these strings.
        Schema::Float | Schema::Double => json!({"anyOf": [
            {"type": "number"},
            {"type": "string", "enum": ["NaN", "Infinity", "-Infinity"]}
        ]}),
        Schema::String => json!({"type": "string"}),
        Schema::Bytes => json!({"type": "string", "contentEncoding": "base64"}),
        Schema::Fixed(fixed) => json!({
            "type": "string", "contentEncoding": "base64",
            "description": format!("Exactly {} bytes.", fixed.size)
        }),
        Schema::Enum(enumeration) => with_doc(
            json!({"type": "string", "enum": enumeration.symbols}),
            enumeration.doc.as_deref(),
        ),
        Schema::Array(array) => {
            json!({"type": "array", "items": describe(entry, &array.items, path)})
        }
        Schema::Map(map) => {
            json!({"type": "object", "additionalProperties": describe(entry, &map.types, path)})
        }
        Schema::Union(union) => {
            let branches: Vec<Json> = union
                .variants()
                .iter()
                .map(|variant| describe(entry, variant, path))
                .collect();
            json!({ "anyOf": branches })
        }
        Schema::Record(record) => {
            let name = record.name.fullname(None);
            path.push(name.clone());
            let mut properties = Map::new();
            let mut required = Vec::new();
            for field in &record.fields {
                let mut property = describe(entry, &field.schema, path);
                if let Json::Object(object) = &mut property {
                    // The field says what the value means; the type's own note (a decimal's
                    // precision, a record's doc) follows it rather than being lost.
                    if let Some(doc) = &field.doc {
                        let text = match object.get("description").and_then(Json::as_str) {
                            Some(note) => format!("{doc} {note}"),
                            None => doc.clone(),
                        };
                        object.insert("description".into(), json!(text));
                    }
                    // from_json feeds the default through the same conversion as a given value,
                    // so it is a valid document of the field as written.
                    if let Some(default) = &field.default {
                        object.insert("default".into(), default.clone());
                    }
                }
                if field.default.is_none() {
                    required.push(json!(field.name));
                }
                properties.insert(field.name.clone(), property);
            }
            path.pop();
            with_doc(
                json!({
                    "type": "object", "title": name, "properties": properties,
                    "required": required, "additionalProperties": false
                }),
                record.doc.as_deref(),
            )
        }
        Schema::Decimal(decimal) => json!({
            "type": ["string", "number"], "pattern": DECIMAL_PATTERN,
            "description": format!(
                "A decimal of at most {} digits, {} after the point; a string keeps every digit.",
                decimal.precision, decimal.scale
            )
        }),
        Schema::BigDecimal => json!({
            "type": ["string", "number"], "description": "A decimal of any precision."
        }),
        Schema::Uuid(_) => json!({"type": "string", "format": "uuid"}),
        Schema::Date => json!({"anyOf": [
            {"type": "string", "format": "date"},
            {"type": "integer", "minimum": i32::MIN, "maximum": i32::MAX,
             "description": "Days since 1970-01-01."}
        ]}),
        Schema::TimeMillis => json!({
            "type": "integer", "minimum": i32::MIN, "maximum": i32::MAX,
            "description": "Milliseconds after midnight."
        }),
        Schema::TimeMicros => {
            json!({"type": "integer", "description": "Microseconds after midnight."})
        }
        Schema::TimestampMillis => instant("Milliseconds"),
        Schema::TimestampMicros => instant("Microseconds"),
        Schema::TimestampNanos => instant("Nanoseconds"),
        Schema::LocalTimestampMillis => local_instant("Milliseconds"),
        Schema::LocalTimestampMicros => local_instant("Microseconds"),
        Schema::LocalTimestampNanos => local_instant("Nanoseconds"),
        Schema::Duration(_) => refused("The duration logical type is not accepted from JSON."),
        Schema::Ref { name } => {
            let name = name.fullname(None);
            match entry.resolve(schema) {
                Schema::Ref { .. } => refused(&format!("Unknown named type {name}.")),
                _ if times_on(path, &name) >= SCHEMA_NESTING => json!({}),
                resolved => describe(entry, resolved, path),
            }
        }
    }
}

fn with_doc(mut schema: Json, doc: Option<&str>) -> Json {
    if let (Json::Object(object), Some(doc)) = (&mut schema, doc) {
        object.insert("description".into(), json!(doc));
    }
    schema
}

/// A schema no document satisfies, with the reason for people reading the catalogue.
fn refused(reason: &str) -> Json {
    json!({"not": {}, "description": reason})
}

fn instant(unit: &str) -> Json {
    json!({"anyOf": [
        {"type": "string", "format": "date-time"},
        {"type": "integer", "description": format!("{unit} since the Unix epoch.")}
    ]})
}

fn local_instant(unit: &str) -> Json {
    json!({
        "type": "integer",
        "description": format!("{unit} since 1970-01-01T00:00:00, local time.")
    })
}

fn times_on(path: &[String], name: &str) -> usize {
    path.iter().filter(|on_path| *on_path == name).count()
}

/// A reference that would recurse once more than examples go.
fn exhausted(schema: &Schema, path: &[String]) -> bool {
    matches!(schema, Schema::Ref { name } if times_on(path, &name.fullname(None)) >= EXAMPLE_NESTING)
}

/// `field` is the name of the field `schema` belongs to, which picks plausible strings.
fn sample(entry: &SchemaEntry, schema: &Schema, field: &str, path: &mut Vec<String>) -> Json {
    match schema {
        Schema::Null | Schema::Duration(_) => Json::Null,
        Schema::Boolean => json!(true),
        Schema::Int | Schema::Long => json!(1),
        Schema::Float | Schema::Double => json!(0.5),
        Schema::String => json!(example_text(field)),
        Schema::Bytes => json!(base64(b"example")),
        Schema::Fixed(fixed) => {
            let bytes: Vec<u8> = b"example"
                .iter()
                .copied()
                .cycle()
                .take(fixed.size)
                .collect();
            json!(base64(&bytes))
        }
        Schema::Enum(enumeration) => enumeration.symbols.first().map_or(Json::Null, |s| json!(s)),
        Schema::Array(array) if exhausted(&array.items, path) => json!([]),
        Schema::Array(array) => json!([sample(entry, &array.items, field, path)]),
        Schema::Map(map) if exhausted(&map.types, path) => json!({}),
        Schema::Map(map) => json!({"key": sample(entry, &map.types, field, path)}),
        Schema::Union(union) => union
            .variants()
            .iter()
            .find(|variant| {
                !matches!(variant, Schema::Null) && !exhausted(variant, path.as_slice())
            })
            .map_or(Json::Null, |variant| sample(entry, variant, field, path)),
        Schema::Record(record) => {
            path.push(record.name.fullname(None));
            let object: Map<String, Json> = record
                .fields
                .iter()
                .map(|f| (f.name.clone(), sample(entry, &f.schema, &f.name, path)))
                .collect();
            path.pop();
            Json::Object(object)
        }
        Schema::Decimal(decimal) => json!(decimal_example(decimal.precision, decimal.scale)),
        Schema::BigDecimal => json!("99.00"),
        Schema::Uuid(_) => json!("123e4567-e89b-42d3-a456-426614174000"),
        Schema::Date => json!("2026-01-01"),
        Schema::TimeMillis => json!(8 * 3_600_000),
        Schema::TimeMicros => json!(8_i64 * 3_600_000_000),
        // The text to_json writes for each precision, so that examples render back unchanged.
        Schema::TimestampMillis => json!("2026-01-01T08:00:00.000Z"),
        Schema::TimestampMicros => json!("2026-01-01T08:00:00.000000Z"),
        Schema::TimestampNanos => json!("2026-01-01T08:00:00.000000000Z"),
        Schema::LocalTimestampMillis => json!(EXAMPLE_EPOCH_SECONDS * 1_000),
        Schema::LocalTimestampMicros => json!(EXAMPLE_EPOCH_SECONDS * 1_000_000),
        Schema::LocalTimestampNanos => json!(EXAMPLE_EPOCH_SECONDS * 1_000_000_000),
        Schema::Ref { name } if times_on(path, &name.fullname(None)) >= EXAMPLE_NESTING => {
            Json::Null
        }
        Schema::Ref { .. } => match entry.resolve(schema) {
            Schema::Ref { .. } => Json::Null,
            resolved => sample(entry, resolved, field, path),
        },
    }
}

fn example_text(field: &str) -> String {
    match field {
        "currency" => "CNY".to_owned(),
        "email" => "user@example.com".to_owned(),
        "id" => "id-1001".to_owned(),
        _ if field.ends_with("_email") => "user@example.com".to_owned(),
        _ => match field.strip_suffix("_id") {
            Some(stem) => format!("{}-1001", stem.replace('_', "-")),
            None => field.to_owned(),
        },
    }
}

/// 99 with the schema's scale, fewer whole digits when the precision leaves no room.
fn decimal_example(precision: usize, scale: usize) -> String {
    let whole = match precision.saturating_sub(scale) {
        0 => "0",
        1 => "9",
        _ => "99",
    };
    if scale == 0 {
        whole.to_owned()
    } else {
        format!("{whole}.{}", "0".repeat(scale))
    }
}

fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::Catalog;
    use crate::encode::{encode_event, from_json};
    use crate::json::to_json;

    fn catalog() -> Catalog {
        Catalog::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas"))
            .expect("the repo's schemas load")
    }

    /// Every example encodes and renders back unchanged, and `required` lists exactly the fields
    /// encode insists on.
    #[test]
    fn schemas_and_examples_agree_with_encode() {
        let catalog = catalog();
        for t in [
            "order.completed",
            "order.created",
            "order.paid",
            "user.registered",
        ] {
            assert!(catalog.by_event_type(t).is_some(), "{t}");
        }
        for schema in catalog.schemas() {
            let (entry, at) = (&schema.entry, &schema.event_type);
            let doc = example(entry);
            let datum =
                encode_event(entry, at, &doc).unwrap_or_else(|e| panic!("{at}: {e}\n{doc}"));
            assert!(!datum.is_empty(), "{at}");
            let value = from_json(entry, &doc).expect("accepted");
            assert_eq!(to_json(entry, entry.schema(), &value), doc, "{at}");

            let Schema::Record(record) = entry.schema() else {
                panic!("{at} is not a record");
            };
            let described = to_json_schema(entry);
            assert_eq!(described["$schema"], DIALECT);
            assert_eq!(described["additionalProperties"], false, "{at}");
            let properties = described["properties"].as_object().expect("properties");
            assert_eq!(properties.len(), record.fields.len(), "{at}");
            let required = described["required"].as_array().expect("required");
            for field in &record.fields {
                let name = &field.name;
                assert!(properties.contains_key(name), "{at}.{name}");
                let is_required = required.contains(&json!(name));
                assert_eq!(is_required, field.default.is_none(), "{at}.{name}");
                let mut without = doc.clone();
                without.as_object_mut().expect("an object").remove(name);
                assert_eq!(
                    from_json(entry, &without).is_ok(),
                    !is_required,
                    "{at} w/o {name}"
                );
            }
            let mut extra = doc.clone();
            extra["not_a_field"] = json!(1);
            assert!(from_json(entry, &extra).is_err(), "{at}");
        }
    }

    #[test]
    fn order_paid_allows_numbers_where_encode_takes_them() {
        let catalog = catalog();
        let paid = &catalog
            .by_event_type("order.paid")
            .expect("catalogued")
            .entry;
        let described = to_json_schema(paid);
        let required = described["required"].as_array().expect("required");
        assert!(required.contains(&json!("order_id")));
        assert!(!required.contains(&json!("coupon_code")));
        let properties = &described["properties"];
        assert_eq!(properties["amount"]["type"], json!(["string", "number"]));
        let amount_doc = properties["amount"]["description"]
            .as_str()
            .expect("documented");
        let expected = "Amount captured, in `currency`. A decimal of at most 18 digits, 2 after";
        assert!(amount_doc.starts_with(expected), "{amount_doc}");
        let coupon = json!([{"type": "null"}, {"type": "string"}]);
        assert_eq!(properties["coupon_code"]["anyOf"], coupon);
        assert_eq!(properties["paid_at"]["anyOf"][0]["format"], "date-time");
        assert_eq!(properties["paid_at"]["anyOf"][1]["type"], "integer");
        let doc = example(paid);
        assert_eq!(doc["order_id"], "order-1001");
        assert_eq!(
            (&doc["currency"], &doc["amount"]),
            (&json!("CNY"), &json!("99.00"))
        );
        // The numeric forms the schema allows mean the same as the example's text.
        let mut numeric = doc.clone();
        numeric["amount"] = json!(99);
        numeric["paid_at"] = json!(EXAMPLE_EPOCH_SECONDS * 1_000);
        assert_eq!(from_json(paid, &numeric), from_json(paid, &doc));
    }

    #[test]
    fn a_topic_union_describes_every_branch_and_exemplifies_the_first() {
        let catalog = catalog();
        let text = |t: &str| catalog.by_event_type(t).expect("catalogued").text.clone();
        let union = format!("[{},{}]", text("order.created"), text("order.paid"));
        let union = SchemaEntry::parse(&union).expect("a union parses");
        let described = to_json_schema(&union);
        let branches = described["anyOf"].as_array().expect("anyOf");
        let titles: Vec<&Json> = branches.iter().map(|b| &b["title"]).collect();
        let order = "com.example.platform.order";
        assert_eq!(
            titles,
            [
                &json!(format!("{order}.OrderCreated")),
                &json!(format!("{order}.OrderPaid"))
            ]
        );
        let doc = example(&union);
        let datum =
            encode_event(&union, "order.created", &doc).unwrap_or_else(|e| panic!("{e}: {doc}"));
        assert!(!datum.is_empty());
    }

    #[test]
    fn logical_types_and_recursive_records_stay_finite_and_round_trip() {
        let entry = SchemaEntry::parse(
            r#"{"type":"record","name":"Node","fields":[
                {"name":"id","type":{"type":"string","logicalType":"uuid"}},
                {"name":"day","type":{"type":"int","logicalType":"date"}},
                {"name":"at","type":{"type":"long","logicalType":"timestamp-micros"}},
                {"name":"digest","type":{"type":"fixed","name":"Digest","size":4}},
                {"name":"ratio","type":"float"},
                {"name":"labels","type":{"type":"map","values":"string"}},
                {"name":"price","type":{"type":"bytes","logicalType":"decimal","precision":3,"scale":2}},
                {"name":"next","type":["null","Node"],"default":null},
                {"name":"children","type":{"type":"array","items":"Node"}}
            ]}"#,
        )
        .expect("parses");
        let doc = example(&entry);
        let value = from_json(&entry, &doc).unwrap_or_else(|e| panic!("{e}: {doc}"));
        assert_eq!(to_json(&entry, entry.schema(), &value), doc);
        assert_eq!((&doc["next"], &doc["children"]), (&Json::Null, &json!([])));
        assert_eq!(doc["price"], "9.00");
        let described = to_json_schema(&entry);
        let inner = &described["properties"]["next"]["anyOf"][1];
        assert_eq!(inner["title"], "Node");
        assert_eq!(inner["properties"]["next"]["anyOf"][1], json!({}));
        assert_eq!(described["properties"]["day"]["anyOf"][0]["format"], "date");
    }
}
