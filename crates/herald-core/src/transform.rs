//! From an event to the payload a subscriber receives: the default JSON envelope, a field
//! projection of the data, or a minijinja template, compiled once per subscription.

use std::fmt;

use serde_json::{Map, Value as Json};

use crate::subscription::TransformSpec;

/// Media type of JSON payloads.
pub const JSON: &str = "application/json";
/// Media type of template output that is not JSON.
pub const TEXT: &str = "text/plain; charset=utf-8";

/// Why a transform was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum TransformError {
    /// The template does not compile.
    #[error("template does not compile: {0}")]
    Template(String),
    /// A projected field name is empty.
    #[error("fields: names must not be empty")]
    EmptyField,
    /// Rendering failed for one event (an undefined filter, a runtime error).
    #[error("template failed for this event: {0}")]
    Render(String),
}

/// A compiled transform.
pub struct Transform {
    fields: Option<Vec<String>>,
    /// An environment holding the one template `payload`; minijinja keeps compiled templates
    /// in their environment.
    template: Option<minijinja::Environment<'static>>,
}

impl fmt::Debug for Transform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transform")
            .field("fields", &self.fields)
            .field("template", &self.template.is_some())
            .finish()
    }
}

/// A rendered payload and its media type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// The body.
    pub body: String,
    /// Its media type.
    pub content_type: &'static str,
}

impl Transform {
    /// Compiles a subscription's transform; `None` delivers the envelope unchanged.
    pub fn compile(spec: Option<&TransformSpec>) -> Result<Self, TransformError> {
        let Some(spec) = spec else {
            return Ok(Self {
                fields: None,
                template: None,
            });
        };
        if let Some(fields) = &spec.fields
            && fields.iter().any(|f| f.trim().is_empty())
        {
            return Err(TransformError::EmptyField);
        }
        let template = match &spec.template {
            None => None,
            Some(text) => {
                let mut env = minijinja::Environment::new();
                env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
                env.add_template_owned("payload", text.clone())
                    .map_err(|e| TransformError::Template(e.to_string()))?;
                Some(env)
            }
        };
        Ok(Self {
            fields: spec.fields.clone(),
            template,
        })
    }

    /// Renders the payload for `envelope` (an object holding `data`).
    pub fn render(&self, envelope: &Json) -> Result<Payload, TransformError> {
        let projected;
        let envelope = match &self.fields {
            None => envelope,
            Some(fields) => {
                projected = project(envelope, fields);
                &projected
            }
        };
        match &self.template {
            // `to_string` would go through `Display` and `fmt::Write`, measurably slower per
            // notification than serde_json's own writer.
            None => Ok(Payload {
                body: serde_json::to_string(envelope).expect("a JSON value always serializes"),
                content_type: JSON,
            }),
            Some(env) => {
                let template = env
                    .get_template("payload")
                    .map_err(|e| TransformError::Render(e.to_string()))?;
                let data = envelope.get("data").cloned().unwrap_or(Json::Null);
                let body = template
                    .render(minijinja::context! { event => envelope, data => data })
                    .map_err(|e| TransformError::Render(e.to_string()))?;
                let content_type = if serde_json::from_str::<serde::de::IgnoredAny>(&body).is_ok() {
                    JSON
                } else {
                    TEXT
                };
                Ok(Payload { body, content_type })
            }
        }
    }
}

/// The envelope with its data narrowed to `fields`; a field the event lacks is left out.
fn project(envelope: &Json, fields: &[String]) -> Json {
    let mut out = envelope.clone();
    if let Some(Json::Object(data)) = envelope.get("data") {
        let kept: Map<String, Json> = fields
            .iter()
            .filter_map(|f| data.get(f).map(|v| (f.clone(), v.clone())))
            .collect();
        out["data"] = Json::Object(kept);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn envelope() -> Json {
        json!({"id": "e-1", "type": "order.paid", "data": {"order_id": "o-1", "total_amount": "9.90", "buyer": "b"}})
    }

    #[test]
    fn no_transform_sends_the_envelope() {
        let payload = Transform::compile(None)
            .unwrap()
            .render(&envelope())
            .unwrap();
        assert_eq!(payload.content_type, JSON);
        assert_eq!(
            serde_json::from_str::<Json>(&payload.body).unwrap(),
            envelope()
        );
    }

    #[test]
    fn fields_project_the_data() {
        let spec = TransformSpec {
            fields: Some(vec![
                "order_id".into(),
                "total_amount".into(),
                "nope".into(),
            ]),
            ..TransformSpec::default()
        };
        let payload = Transform::compile(Some(&spec))
            .unwrap()
            .render(&envelope())
            .unwrap();
        let body: Json = serde_json::from_str(&payload.body).unwrap();
        assert_eq!(
            body["data"],
            json!({"order_id": "o-1", "total_amount": "9.90"})
        );
        assert_eq!(body["id"], "e-1");
    }

    #[test]
    fn templates_render_text_or_json() {
        let text = TransformSpec {
            template: Some("Order {{ data.order_id }} paid: {{ data.total_amount }}".into()),
            ..TransformSpec::default()
        };
        let payload = Transform::compile(Some(&text))
            .unwrap()
            .render(&envelope())
            .unwrap();
        assert_eq!(payload.body, "Order o-1 paid: 9.90");
        assert_eq!(payload.content_type, TEXT);

        let json_template = TransformSpec {
            template: Some(
                r#"{"msgtype": "text", "text": {"content": "{{ event.type }}"}}"#.into(),
            ),
            ..TransformSpec::default()
        };
        let payload = Transform::compile(Some(&json_template))
            .unwrap()
            .render(&envelope())
            .unwrap();
        assert_eq!(payload.content_type, JSON);
    }

    #[test]
    fn broken_templates_are_refused_and_missing_fields_fail_the_render() {
        let broken = TransformSpec {
            template: Some("{{ data.order_id ".into()),
            ..TransformSpec::default()
        };
        assert!(matches!(
            Transform::compile(Some(&broken)),
            Err(TransformError::Template(_))
        ));
        let strict = TransformSpec {
            template: Some("{{ data.absent }}".into()),
            ..TransformSpec::default()
        };
        assert!(matches!(
            Transform::compile(Some(&strict))
                .unwrap()
                .render(&envelope()),
            Err(TransformError::Render(_))
        ));
    }
}
