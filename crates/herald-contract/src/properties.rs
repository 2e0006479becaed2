//! Property tests: for every schema in the repo's `schemas/`, any value survives
//! encode → frame → decode, and Avro → JSON → Avro.

use std::path::Path;
use std::sync::Arc;

use apache_avro::Schema;
use apache_avro::types::Value;
use num_bigint::BigInt;
use proptest::prelude::*;

use crate::catalog::Catalog;
use crate::decode::{Decoder, RawRecord};
use crate::schema::SchemaEntry;

fn catalog() -> Arc<Catalog> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas");
    Arc::new(Catalog::load_dir(&dir).expect("schemas/ loads"))
}

/// Values of `schema` (a part of `entry`), limited to what JSON can carry back exactly:
/// finite floats, timestamps within years 1–9999.
fn value_of(entry: &Arc<SchemaEntry>, schema: &Schema) -> BoxedStrategy<Value> {
    let schema = entry.resolve(schema).clone();
    match schema {
        Schema::Null => Just(Value::Null).boxed(),
        Schema::Boolean => any::<bool>().prop_map(Value::Boolean).boxed(),
        Schema::Int => any::<i32>().prop_map(Value::Int).boxed(),
        Schema::Long => any::<i64>().prop_map(Value::Long).boxed(),
        Schema::Float => (-1.0e6f32..1.0e6).prop_map(Value::Float).boxed(),
        Schema::Double => (-1.0e12f64..1.0e12).prop_map(Value::Double).boxed(),
        Schema::String => any::<String>().prop_map(Value::String).boxed(),
        Schema::Bytes => proptest::collection::vec(any::<u8>(), 0..16)
            .prop_map(Value::Bytes)
            .boxed(),
        Schema::Enum(enumeration) => {
            let symbols = enumeration.symbols.clone();
            (0..symbols.len())
                .prop_map(move |i| Value::Enum(i as u32, symbols[i].clone()))
                .boxed()
        }
        Schema::Array(array) => proptest::collection::vec(value_of(entry, &array.items), 0..4)
            .prop_map(Value::Array)
            .boxed(),
        Schema::Map(map) => {
            proptest::collection::hash_map("[a-z]{1,6}", value_of(entry, &map.types), 0..3)
                .prop_map(Value::Map)
                .boxed()
        }
        Schema::Union(union) => {
            let branches: Vec<BoxedStrategy<Value>> = union
                .variants()
                .iter()
                .enumerate()
                .map(|(i, variant)| {
                    value_of(entry, variant)
                        .prop_map(move |v| Value::Union(i as u32, Box::new(v)))
                        .boxed()
                })
                .collect();
            proptest::strategy::Union::new(branches).boxed()
        }
        Schema::Record(record) => {
            let fields: Vec<BoxedStrategy<(String, Value)>> = record
                .fields
                .iter()
                .map(|field| {
                    let name = field.name.clone();
                    value_of(entry, &field.schema)
                        .prop_map(move |v| (name.clone(), v))
                        .boxed()
                })
                .collect();
            fields.prop_map(Value::Record).boxed()
        }
        Schema::Decimal(decimal) => {
            let bound = 10i64.pow(decimal.precision.min(18) as u32) - 1;
            (-bound..=bound)
                .prop_map(|unscaled| {
                    Value::Decimal(apache_avro::Decimal::from(
                        BigInt::from(unscaled).to_signed_bytes_be(),
                    ))
                })
                .boxed()
        }
        Schema::TimestampMillis => (-62_135_596_800_000i64..253_402_300_799_999)
            .prop_map(Value::TimestampMillis)
            .boxed(),
        Schema::Date => (-719_162i32..2_932_896).prop_map(Value::Date).boxed(),
        other => panic!("the property tests have no generator for {other:?}; add one"),
    }
}

/// A strategy over (catalogue entry, value of it) for every schema in the catalogue.
fn any_catalogued_value() -> impl Strategy<Value = (Arc<SchemaEntry>, Value)> {
    let catalog = catalog();
    let per_schema: Vec<BoxedStrategy<(Arc<SchemaEntry>, Value)>> = catalog
        .schemas()
        .iter()
        .map(|schema| {
            let entry = schema.entry.clone();
            value_of(&entry, entry.schema())
                .prop_map(move |value| (entry.clone(), value))
                .boxed()
        })
        .collect();
    proptest::strategy::Union::new(per_schema)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_schema_round_trips_through_single_object_encoding((entry, value) in any_catalogued_value()) {
        let datum = crate::encode::encode_value(&entry, value.clone()).expect("a generated value encodes");
        let payload = crate::framing::single_object(entry.fingerprint(), &datum);
        let decoder = Decoder::new(None, catalog());
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let event = runtime
            .block_on(decoder.decode(&RawRecord { topic: "t", payload: Some(&payload), ..RawRecord::default() }))
            .expect("decodes");
        match event.data {
            crate::decode::EventData::Avro { value: decoded, .. } => prop_assert_eq!(decoded, value),
            other => prop_assert!(false, "not Avro: {:?}", other),
        }
    }

    #[test]
    fn every_schema_round_trips_through_json((entry, value) in any_catalogued_value()) {
        let json = crate::json::to_json(&entry, entry.schema(), &value);
        let back = crate::encode::from_json(&entry, &json).expect("rendered JSON encodes back");
        let again = crate::json::to_json(&entry, entry.schema(), &back);
        prop_assert_eq!(&again, &json);
        // Values, not bytes: Avro writes map entries in no particular order.
        prop_assert_eq!(back, value);
    }

    #[test]
    fn the_decoder_never_panics_on_arbitrary_bytes(payload in proptest::collection::vec(any::<u8>(), 0..256)) {
        let decoder = Decoder::new(None, catalog());
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        // Any outcome but a panic is acceptable; errors are checked for being typed elsewhere.
        let _ = runtime.block_on(decoder.decode(&RawRecord { topic: "t", payload: Some(&payload), ..RawRecord::default() }));
    }

    #[test]
    fn mutated_valid_payloads_never_panic((entry, value) in any_catalogued_value(), flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4)) {
        let datum = crate::encode::encode_value(&entry, value).expect("encodes");
        let mut payload = crate::framing::single_object(entry.fingerprint(), &datum);
        for (index, byte) in flips {
            let i = 10 + index.index(payload.len().saturating_sub(10).max(1));
            if i < payload.len() {
                payload[i] = byte;
            }
        }
        let decoder = Decoder::new(None, catalog());
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let _ = runtime.block_on(decoder.decode(&RawRecord { topic: "t", payload: Some(&payload), ..RawRecord::default() }));
    }
}
