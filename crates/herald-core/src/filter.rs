//! Subscription filters in CEL, the Common Expression Language (the `cel` crate): compiled
//! once when a subscription is created or loaded, evaluated per event against a
//! [`FilterInput`] built once per event and shared by every candidate subscription.
//!
//! An expression sees `event` (`id`, `type`, `source`, `subject`, `tenant`, `recipient`,
//! `time` as epoch milliseconds, `data`) and `data` as a shortcut for `event.data`; data is the
//! JSON rendering of the event (decimals as strings, timestamps as RFC 3339), e.g.
//! `data.currency == "CNY" && double(data.total_amount) >= 100.0`.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, LazyLock, OnceLock};

use cel::common::types::{
    CelBool, CelDouble, CelInt, CelList, CelMap, CelMapKey, CelNull, CelString, CelUInt,
};
use cel::common::value::{CowVal, Val};
use cel::context::VariableResolver;
use cel::{Context, Env, Program, Value};

/// The standard CEL environment, built once: building it per evaluation would cost more
/// than most filters do.
static STDLIB: LazyLock<Arc<Env>> = LazyLock::new(|| Arc::new(Env::stdlib()));

/// Why a filter expression was refused.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    /// The text is not CEL.
    #[error("{expression:?} is not a valid CEL expression: {detail}")]
    Syntax {
        /// The expression as given.
        expression: String,
        /// The parser's message.
        detail: String,
    },
    /// The expression names variables that are never bound.
    #[error(
        "{expression:?} refers to {name:?}; filters see only `event` and `data` (event.id, \
         event.type, event.source, event.subject, event.tenant, event.recipient, event.time, \
         event.data)"
    )]
    UnknownVariable {
        /// The expression as given.
        expression: String,
        /// The unbound name.
        name: String,
    },
}

/// A compiled filter expression.
#[derive(Clone)]
pub struct Filter {
    source: Arc<str>,
    program: Arc<Program>,
}

impl fmt::Debug for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Filter").field(&self.source).finish()
    }
}

impl Filter {
    /// Compiles `expression`, refusing syntax errors and unknown variables now rather than
    /// at the first event.
    pub fn compile(expression: &str) -> Result<Self, FilterError> {
        let program = STDLIB
            .compile(expression)
            .map_err(|e| FilterError::Syntax {
                expression: expression.to_owned(),
                detail: e.to_string().replace('\n', " "),
            })?;
        // The parser reports a macro's iteration variable (`i` in `data.items.all(i, …)`)
        // as a reference too, so a name bound that way is not an unknown variable.
        let compact: String = expression.split_whitespace().collect();
        let references = program.references();
        if let Some(name) = references.variables().into_iter().find(|name| {
            !matches!(*name, "event" | "data") && !compact.contains(&format!("({name},"))
        }) {
            return Err(FilterError::UnknownVariable {
                expression: expression.to_owned(),
                name: name.to_owned(),
            });
        }
        Ok(Self {
            source: expression.into(),
            program: Arc::new(program),
        })
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates the filter. Only a boolean `true` passes; an evaluation error (a missing
    /// field, a type mismatch) is returned so the caller can count it, and counts as no match.
    pub fn matches(&self, input: &FilterInput<'_>) -> Result<bool, String> {
        // A context per evaluation costs an Arc clone; the converted variables live in
        // `input` and are shared by every filter evaluated on the same event.
        let mut context = Context::with_env(STDLIB.clone());
        context.set_variable_resolver(input);
        match self.program.execute(&context) {
            Ok(Value::Bool(pass)) => Ok(pass),
            Ok(other) => Err(format!(
                "filter {:?} returned {other:?}, not a boolean",
                self.source
            )),
            Err(e) => Err(format!("filter {:?} failed: {e}", self.source)),
        }
    }
}

/// The variables a filter sees for one event. Each is converted to CEL the first time a
/// filter reads it and then shared by every filter evaluated on the same event: most filters
/// read only `data`, and converting the whole event (and `data` a second time, for the
/// shortcut) was the router's largest cost per event.
pub struct FilterInput<'a> {
    event: &'a serde_json::Value,
    event_val: OnceLock<Box<dyn Val + 'a>>,
    data_val: OnceLock<Box<dyn Val + 'a>>,
}

impl<'a> FilterInput<'a> {
    /// Binds `event` (the given JSON object, which holds `data`) and `data`.
    pub fn new(event: &'a serde_json::Value) -> Self {
        Self {
            event,
            event_val: OnceLock::new(),
            data_val: OnceLock::new(),
        }
    }
}

/// JSON as a CEL value that borrows the JSON's strings, numbers mapped as `cel::to_value`
/// maps them (non-negative integers as `uint`, negative ones as `int`, others as `double`).
/// Built straight from the JSON: going through `cel::Value` first copied every string and
/// rebuilt every map twice, and was half of the router's routing time (profiled in the
/// router benchmark).
fn to_val<'a>(json: &'a serde_json::Value) -> Box<dyn Val + 'a> {
    use serde_json::Value as Json;
    match json {
        Json::Null => Box::new(CelNull),
        Json::Bool(b) => Box::new(CelBool::from(*b)),
        Json::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Box::new(CelUInt::from(u)),
            (None, Some(i)) => Box::new(CelInt::from(i)),
            _ => Box::new(CelDouble::from(n.as_f64().unwrap_or(f64::NAN))),
        },
        Json::String(text) => Box::new(CelString::from(text.as_str())),
        Json::Array(items) => Box::new(CelList::from(items.iter().map(to_val).collect::<Vec<_>>())),
        Json::Object(fields) => Box::new(CelMap::from(
            fields
                .iter()
                .map(|(k, v)| (CelMapKey::from(k.as_str()), to_val(v)))
                .collect::<HashMap<_, _>>(),
        )),
    }
}

impl VariableResolver for FilterInput<'_> {
    fn resolve<'b>(&'b self, variable: &str) -> Option<CowVal<'b, 'b>> {
        let cell = match variable {
            "event" => self.event_val.get_or_init(|| to_val(self.event)),
            "data" => self
                .data_val
                .get_or_init(|| to_val(self.event.get("data").unwrap_or(&serde_json::Value::Null))),
            _ => return None,
        };
        Some(CowVal::Borrowed(cell.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_converts_as_cel_to_value_does() {
        let json = json!({"a": [1, -2, 2.5, "x", null, true], "b": {"c": u64::MAX}});
        let val = to_val(&json);
        assert_eq!(
            Value::try_from(val.as_ref()).expect("a CEL value"),
            cel::to_value(&json).expect("cel converts JSON")
        );
    }

    fn event() -> serde_json::Value {
        json!({
            "id": "e-1",
            "type": "order.paid",
            "tenant": "m-7",
            "data": {"currency": "CNY", "total_amount": "129.90", "items": [{"sku": "a"}]}
        })
    }

    #[test]
    fn filters_see_the_event_and_its_data() {
        let cases = [
            ("data.currency == 'CNY'", true),
            ("event.data.currency == 'USD'", false),
            ("double(data.total_amount) >= 100.0", true),
            (
                "event.type.startsWith('order.') && event.tenant == 'm-7'",
                true,
            ),
            ("size(data.items) == 1", true),
            ("has(data.coupon)", false),
            ("data.items.exists(item, item.sku == 'a')", true),
        ];
        let event = event();
        let input = FilterInput::new(&event);
        for (expression, expected) in cases {
            let filter = Filter::compile(expression).unwrap();
            assert_eq!(filter.matches(&input), Ok(expected), "{expression}");
        }
    }

    #[test]
    fn bad_expressions_are_refused_at_compile_time() {
        let syntax = Filter::compile("data.amount >").unwrap_err().to_string();
        assert!(syntax.contains("not a valid CEL expression"), "{syntax}");
        let unknown = Filter::compile("order.amount > 1").unwrap_err().to_string();
        assert!(unknown.contains("refers to \"order\""), "{unknown}");
    }

    #[test]
    fn evaluation_errors_and_non_booleans_do_not_match() {
        let event = event();
        let input = FilterInput::new(&event);
        assert!(
            Filter::compile("data.missing > 1")
                .unwrap()
                .matches(&input)
                .is_err()
        );
        assert!(
            Filter::compile("data.currency")
                .unwrap()
                .matches(&input)
                .is_err()
        );
    }
}
