//! Parsed Avro schemas with what Herald needs to know about them: their fingerprint, the named
//! types they define, and which event type each record stands for.

use std::collections::HashMap;

use apache_avro::Schema;
use apache_avro::rabin::Rabin;

/// The custom record attribute that names the event type a record schema carries, for
/// producers that do not set a `ce_type` header.
pub const EVENT_TYPE_ATTRIBUTE: &str = "x-herald-event-type";

/// A parsed schema and the facts about it computed once.
#[derive(Debug)]
pub struct SchemaEntry {
    schema: Schema,
    /// The named types (records, enums, fixed) by full name, to follow `Schema::Ref`.
    names: HashMap<String, Schema>,
    fingerprint: u64,
}

impl SchemaEntry {
    /// Parses Avro schema JSON.
    pub fn parse(text: &str) -> Result<Self, String> {
        Schema::parse_str(text)
            .map(Self::new)
            .map_err(|e| e.to_string())
    }

    /// Wraps a parsed schema.
    pub fn new(schema: Schema) -> Self {
        let mut names = HashMap::new();
        collect_names(&schema, &mut names);
        let fingerprint_bytes = schema.fingerprint::<Rabin>().bytes;
        // apache-avro emits the Rabin fingerprint in single-object wire order (little-endian).
        let fingerprint =
            u64::from_le_bytes(fingerprint_bytes.as_slice().try_into().unwrap_or([0; 8]));
        Self {
            schema,
            names,
            fingerprint,
        }
    }

    /// The schema.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// CRC-64-AVRO (Rabin) fingerprint of the schema's parsing canonical form.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// Follows a `Schema::Ref` to the named type it stands for; other schemas are returned as
    /// they are.
    pub fn resolve<'a>(&'a self, schema: &'a Schema) -> &'a Schema {
        match schema {
            Schema::Ref { name } => self.names.get(&name.fullname(None)).unwrap_or(schema),
            other => other,
        }
    }

    /// The records this schema can carry at its top level: itself if it is a record, its
    /// record branches if it is a union.
    pub fn top_level_records(&self) -> Vec<&Schema> {
        match &self.schema {
            Schema::Record(_) => vec![&self.schema],
            Schema::Union(union) => union
                .variants()
                .iter()
                .map(|variant| self.resolve(variant))
                .filter(|variant| matches!(variant, Schema::Record(_)))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The top-level record's full name, if the schema is a record.
    pub fn record_name(&self) -> Option<String> {
        record_full_name(&self.schema)
    }
}

/// The full name of a record schema.
pub fn record_full_name(schema: &Schema) -> Option<String> {
    match schema {
        Schema::Record(record) => Some(record.name.fullname(None)),
        _ => None,
    }
}

/// The event type a record schema stands for: its `x-herald-event-type` attribute, else its
/// full name.
pub fn record_event_type(schema: &Schema) -> Option<String> {
    match schema {
        Schema::Record(record) => Some(
            record
                .attributes
                .get(EVENT_TYPE_ATTRIBUTE)
                .and_then(|value| value.as_str())
                .map(str::to_owned)
                .unwrap_or_else(|| record.name.fullname(None)),
        ),
        _ => None,
    }
}

fn collect_names(schema: &Schema, names: &mut HashMap<String, Schema>) {
    match schema {
        Schema::Record(record) => {
            names.insert(record.name.fullname(None), schema.clone());
            for field in &record.fields {
                collect_names(&field.schema, names);
            }
        }
        Schema::Enum(enumeration) => {
            names.insert(enumeration.name.fullname(None), schema.clone());
        }
        Schema::Fixed(fixed) | Schema::Duration(fixed) => {
            names.insert(fixed.name.fullname(None), schema.clone());
        }
        Schema::Array(array) => collect_names(&array.items, names),
        Schema::Map(map) => collect_names(&map.types, names),
        Schema::Union(union) => {
            for variant in union.variants() {
                collect_names(variant, names);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CRC-64-AVRO as the Avro specification defines it, written out independently of
    /// apache-avro so that the fingerprint's value and byte order are checked against the spec.
    fn spec_fingerprint(canonical: &str) -> u64 {
        const EMPTY: u64 = 0xc15d_213a_a4d7_a795;
        let table: Vec<u64> = (0..256u64)
            .map(|i| (0..8).fold(i, |fp, _| (fp >> 1) ^ (EMPTY & (0u64.wrapping_sub(fp & 1)))))
            .collect();
        canonical.bytes().fold(EMPTY, |fp, byte| {
            (fp >> 8) ^ table[((fp ^ u64::from(byte)) & 0xff) as usize]
        })
    }

    #[test]
    fn fingerprints_follow_the_avro_specification() {
        for text in [
            r#""int""#,
            r#"{"type":"record","name":"T","namespace":"a.b","fields":[{"name":"x","type":"long"}]}"#,
        ] {
            let entry = SchemaEntry::parse(text).expect("schema parses");
            assert_eq!(
                entry.fingerprint(),
                spec_fingerprint(&entry.schema().canonical_form()),
                "{text}"
            );
        }
    }

    #[test]
    fn event_type_comes_from_the_attribute_else_the_full_name() {
        let tagged = SchemaEntry::parse(
            r#"{"type":"record","name":"OrderPaid","namespace":"shop","x-herald-event-type":"order.paid","fields":[]}"#,
        )
        .expect("parses");
        assert_eq!(
            record_event_type(tagged.schema()).as_deref(),
            Some("order.paid")
        );
        let plain = SchemaEntry::parse(
            r#"{"type":"record","name":"Thing","namespace":"shop","fields":[]}"#,
        )
        .expect("parses");
        assert_eq!(
            record_event_type(plain.schema()).as_deref(),
            Some("shop.Thing")
        );
    }
}
