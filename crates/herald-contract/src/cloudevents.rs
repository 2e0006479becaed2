//! The CloudEvents Kafka protocol binding: binary mode (`ce_*` headers beside an Avro or JSON
//! value) and structured mode (an `application/cloudevents+json` envelope as the value).

use std::collections::BTreeMap;

use serde_json::Value as Json;

use crate::error::DecodeErrorKind;

/// The header that carries the content type in the Kafka binding.
pub const CONTENT_TYPE_HEADER: &str = "content-type";
/// The content type of a structured-mode JSON envelope.
pub const STRUCTURED_JSON: &str = "application/cloudevents+json";
/// The W3C trace-context header.
pub const TRACEPARENT_HEADER: &str = "traceparent";

/// CloudEvents attributes as far as a record states them; the decoder fills the gaps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    /// `specversion`, `1.0` when present.
    pub specversion: Option<String>,
    /// `id`: unique per source.
    pub id: Option<String>,
    /// `source`: URI-reference of the producer.
    pub source: Option<String>,
    /// `type`, e.g. `order.paid`.
    pub event_type: Option<String>,
    /// `time`, RFC 3339.
    pub time: Option<String>,
    /// `subject`, e.g. the order id.
    pub subject: Option<String>,
    /// `datacontenttype` (binary mode: the `content-type` header).
    pub datacontenttype: Option<String>,
    /// `dataschema`.
    pub dataschema: Option<String>,
    /// Extension attributes such as `tenant` and `recipient`, by name.
    pub extensions: BTreeMap<String, String>,
    /// The W3C `traceparent` header, which travels beside the event.
    pub traceparent: Option<String>,
}

impl Attributes {
    /// Reads binary-mode attributes from Kafka headers. Header values must be UTF-8.
    pub fn from_headers<'a>(
        headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> Result<Self, DecodeErrorKind> {
        let mut attributes = Attributes::default();
        for (name, value) in headers {
            let lower = name.to_ascii_lowercase();
            let is_ours = lower.starts_with("ce_")
                || lower == CONTENT_TYPE_HEADER
                || lower == TRACEPARENT_HEADER;
            if !is_ours {
                continue;
            }
            let text =
                std::str::from_utf8(value).map_err(|_| DecodeErrorKind::InvalidCloudEvent {
                    detail: format!("header {name} is not UTF-8"),
                })?;
            attributes.set(&lower, text.to_owned());
        }
        Ok(attributes)
    }

    fn set(&mut self, header: &str, value: String) {
        match header {
            "ce_specversion" => self.specversion = Some(value),
            "ce_id" => self.id = Some(value),
            "ce_source" => self.source = Some(value),
            "ce_type" => self.event_type = Some(value),
            "ce_time" => self.time = Some(value),
            "ce_subject" => self.subject = Some(value),
            "ce_dataschema" => self.dataschema = Some(value),
            CONTENT_TYPE_HEADER => self.datacontenttype = Some(value),
            TRACEPARENT_HEADER => self.traceparent = Some(value),
            other => {
                if let Some(extension) = other.strip_prefix("ce_") {
                    self.extensions.insert(extension.to_owned(), value);
                }
            }
        }
    }

    /// Whether the record's `content-type` says the value is a structured-mode envelope.
    pub fn is_structured(&self) -> bool {
        self.datacontenttype
            .as_deref()
            .is_some_and(|ct| ct.trim().to_ascii_lowercase().starts_with(STRUCTURED_JSON))
    }

    /// An extension attribute's value.
    pub fn extension(&self, name: &str) -> Option<&str> {
        self.extensions.get(name).map(String::as_str)
    }

    /// The binary-mode headers for these attributes, in a stable order.
    pub fn to_headers(&self) -> Vec<(String, Vec<u8>)> {
        let mut headers = Vec::new();
        let mut push = |name: &str, value: &Option<String>| {
            if let Some(value) = value {
                headers.push((name.to_owned(), value.clone().into_bytes()));
            }
        };
        push("ce_specversion", &self.specversion);
        push("ce_id", &self.id);
        push("ce_source", &self.source);
        push("ce_type", &self.event_type);
        push("ce_time", &self.time);
        push("ce_subject", &self.subject);
        push("ce_dataschema", &self.dataschema);
        push(CONTENT_TYPE_HEADER, &self.datacontenttype);
        push(TRACEPARENT_HEADER, &self.traceparent);
        for (name, value) in &self.extensions {
            headers.push((format!("ce_{name}"), value.clone().into_bytes()));
        }
        headers
    }

    /// Parses a structured-mode JSON envelope into its attributes and its data. Attributes in
    /// the envelope take precedence over headers; `data_base64` is returned as a JSON string.
    pub fn from_structured(mut self, envelope: &[u8]) -> Result<(Self, Json), DecodeErrorKind> {
        let document: Json =
            serde_json::from_slice(envelope).map_err(|e| DecodeErrorKind::InvalidJson {
                detail: e.to_string(),
            })?;
        let Json::Object(mut object) = document else {
            return Err(DecodeErrorKind::InvalidCloudEvent {
                detail: "a structured-mode event must be a JSON object".to_owned(),
            });
        };
        let data = object
            .remove("data")
            .or_else(|| object.remove("data_base64"))
            .unwrap_or(Json::Null);
        for (name, value) in object {
            let text = match value {
                Json::String(s) => s,
                Json::Null => continue,
                other => other.to_string(),
            };
            match name.as_str() {
                "specversion" => self.specversion = Some(text),
                "id" => self.id = Some(text),
                "source" => self.source = Some(text),
                "type" => self.event_type = Some(text),
                "time" => self.time = Some(text),
                "subject" => self.subject = Some(text),
                "dataschema" => self.dataschema = Some(text),
                "datacontenttype" => self.datacontenttype = Some(text),
                extension => {
                    self.extensions.insert(extension.to_owned(), text);
                }
            }
        }
        if let Some(version) = &self.specversion
            && version != "1.0"
        {
            return Err(DecodeErrorKind::InvalidCloudEvent {
                detail: format!("specversion {version:?} is not supported (only 1.0)"),
            });
        }
        Ok((self, data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_headers_round_trip() {
        let headers: Vec<(&str, &[u8])> = vec![
            ("ce_specversion", b"1.0"),
            ("ce_id", b"evt-1"),
            ("ce_type", b"order.paid"),
            ("ce_tenant", b"m-7"),
            (
                "traceparent",
                b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
            ("unrelated", b"x"),
        ];
        let attributes = Attributes::from_headers(headers).expect("valid");
        assert_eq!(attributes.id.as_deref(), Some("evt-1"));
        assert_eq!(attributes.extension("tenant"), Some("m-7"));
        let back = attributes.to_headers();
        let reparsed =
            Attributes::from_headers(back.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .expect("valid");
        assert_eq!(reparsed, attributes);
    }

    #[test]
    fn structured_envelopes_give_attributes_and_data() {
        let (attributes, data) = Attributes::default()
            .from_structured(
                br#"{"specversion":"1.0","id":"e1","source":"/shop","type":"order.created","recipient":"app-1","data":{"order_id":"o1"}}"#,
            )
            .expect("valid");
        assert_eq!(attributes.event_type.as_deref(), Some("order.created"));
        assert_eq!(attributes.extension("recipient"), Some("app-1"));
        assert_eq!(data, serde_json::json!({"order_id": "o1"}));
        assert!(matches!(
            Attributes::default().from_structured(br#"{"specversion":"0.3","id":"x"}"#),
            Err(DecodeErrorKind::InvalidCloudEvent { .. })
        ));
        assert!(matches!(
            Attributes::default().from_structured(b"{not json"),
            Err(DecodeErrorKind::InvalidJson { .. })
        ));
    }

    #[test]
    fn non_utf8_headers_are_refused() {
        let headers: Vec<(&str, &[u8])> = vec![("ce_id", &[0xff, 0xfe])];
        assert!(matches!(
            Attributes::from_headers(headers),
            Err(DecodeErrorKind::InvalidCloudEvent { .. })
        ));
    }
}
