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

use cel::common::ast::{Expr, IdedExpr};
use cel::common::traits::{Container, Indexer, Iterable, Sizer, Zeroer};
use cel::common::types::{
    CelBool, CelDouble, CelInt, CelList, CelMap, CelMapKey, CelNull, CelString, CelUInt, MAP_TYPE,
    Type,
};
use cel::common::value::{CowVal, Val};
use cel::context::VariableResolver;
use cel::{Context, Env, ExecutionError, Program, Value};

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
    /// Whether the filter may see its variables converted lazily: it builds no map literal.
    lazy: bool,
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
            lazy: !builds_map_literal(program.expression()),
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
        context.set_variable_resolver(input.view(self.lazy));
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

/// The variables a filter sees for one event, bound once and shared by every filter evaluated
/// on it, in two views: converted lazily ([`JsonMap`]s, which convert a value when an
/// expression reads it) and converted whole on first use. Most filters read one or two
/// fields, and converting the whole event first was the largest part of a filter's cost
/// (profiled in the router benchmark); only filters that build map literals need the whole
/// conversion (see [`Filter::compile`]).
pub struct FilterInput<'a> {
    lazy: Variables<'a>,
    eager: Variables<'a>,
}

impl<'a> FilterInput<'a> {
    /// Binds `event` (the given JSON object, which holds `data`) and `data`.
    pub fn new(event: &'a serde_json::Value) -> Self {
        Self {
            lazy: Variables::new(event, lazy_val),
            eager: Variables::new(event, to_val),
        }
    }

    fn view(&self, lazy: bool) -> &Variables<'a> {
        if lazy { &self.lazy } else { &self.eager }
    }
}

/// `event` and `data`, each converted by `convert` the first time a filter reads it.
struct Variables<'a> {
    event: &'a serde_json::Value,
    convert: fn(&'a serde_json::Value) -> Box<dyn Val + 'a>,
    event_val: OnceLock<Box<dyn Val + 'a>>,
    data_val: OnceLock<Box<dyn Val + 'a>>,
}

impl<'a> Variables<'a> {
    fn new(
        event: &'a serde_json::Value,
        convert: fn(&'a serde_json::Value) -> Box<dyn Val + 'a>,
    ) -> Self {
        Self {
            event,
            convert,
            event_val: OnceLock::new(),
            data_val: OnceLock::new(),
        }
    }
}

/// Whether `expr` builds a map (or message) literal. CEL's built-in maps compare equal only
/// to built-in maps, so `{'id': 'u-1'} == data.buyer` needs `data` converted whole.
fn builds_map_literal(expr: &IdedExpr) -> bool {
    match &expr.expr {
        Expr::Map(_) | Expr::Struct(_) => true,
        Expr::Call(call) => {
            call.target.as_deref().is_some_and(builds_map_literal)
                || call.args.iter().any(builds_map_literal)
        }
        Expr::Comprehension(c) => [
            &c.iter_range,
            &c.accu_init,
            &c.loop_cond,
            &c.loop_step,
            &c.result,
        ]
        .into_iter()
        .any(builds_map_literal),
        Expr::List(list) => list.elements.iter().any(builds_map_literal),
        Expr::Select(select) => builds_map_literal(&select.operand),
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => false,
    }
}

/// JSON as a CEL value that converts lazily: an object becomes a [`JsonMap`], an array a list
/// of lazy elements, a scalar what [`to_val`] makes of it.
fn lazy_val<'a>(json: &'a serde_json::Value) -> Box<dyn Val + 'a> {
    use serde_json::Value as Json;
    match json {
        Json::Object(fields) => Box::new(JsonMap::new(fields)),
        Json::Array(items) => Box::new(CelList::from(
            items.iter().map(lazy_val).collect::<Vec<_>>(),
        )),
        scalar => to_val(scalar),
    }
}

/// A JSON object as a CEL map (`map(dyn, dyn)`) that converts a field when an expression reads
/// it (`data.currency`, `'currency' in data`, `size(data)`, `has(data.coupon)`); iterating it
/// works on its whole conversion, made once on first need. It behaves as an eagerly converted
/// map in every expression without a map literal (the tests compare both): a built-in map
/// does not see it as equal, and the interpreter cannot turn it into a `Value` (a filter
/// returning a map fails either way).
struct JsonMap<'a> {
    fields: &'a serde_json::Map<String, serde_json::Value>,
    whole: OnceLock<CelMap<'a>>,
}

impl fmt::Debug for JsonMap<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("JsonMap").field(self.fields).finish()
    }
}

impl<'a> JsonMap<'a> {
    fn new(fields: &'a serde_json::Map<String, serde_json::Value>) -> Self {
        Self {
            fields,
            whole: OnceLock::new(),
        }
    }

    fn whole(&self) -> &CelMap<'a> {
        self.whole.get_or_init(|| eager_map(self.fields))
    }
}

impl Val for JsonMap<'_> {
    fn get_type(&self) -> &Type {
        <Self as Val>::cel_type()
    }

    fn cel_type() -> &'static Type {
        &MAP_TYPE
    }

    fn as_container(&self) -> Option<&dyn Container> {
        Some(self)
    }

    fn as_indexer<'b, 'w>(&'b self) -> Option<&'b (dyn Indexer + 'w)>
    where
        Self: 'w,
    {
        Some(self)
    }

    fn as_iterable<'b, 'w>(&'b self) -> Option<&'b (dyn Iterable + 'w)>
    where
        Self: 'w,
    {
        Some(self.whole())
    }

    fn as_sizer(&self) -> Option<&dyn Sizer> {
        Some(self)
    }

    fn as_zeroer(&self) -> Option<&dyn Zeroer> {
        Some(self)
    }

    /// Equal to a map of the same size holding an equal value at each of this one's keys, as
    /// CEL's maps compare; asked of the other map through its traits, so it holds whether the
    /// other is built-in or lazy too.
    fn equals(&self, other: &dyn Val) -> bool {
        if other.get_type().name() != MAP_TYPE.name() {
            return false;
        }
        let (Some(size), Some(theirs)) = (other.as_sizer(), other.as_indexer()) else {
            return false;
        };
        *size.size().inner() == self.fields.len() as i64
            && self.fields.iter().all(|(key, value)| {
                theirs
                    .get(&CelString::from(key.as_str()))
                    .is_ok_and(|their| lazy_val(value).equals(their.as_ref()))
            })
    }

    fn clone_as_boxed<'w>(&self) -> Box<dyn Val + 'w>
    where
        Self: 'w,
    {
        Box::new(JsonMap::new(self.fields))
    }
}

impl Container for JsonMap<'_> {
    fn contains(&self, key: &dyn Val) -> Result<bool, ExecutionError> {
        match key.downcast_ref::<CelString>() {
            Some(name) => Ok(self.fields.contains_key(name.inner())),
            None => self.whole().contains(key),
        }
    }
}

impl Indexer for JsonMap<'_> {
    fn get<'b, 'w>(&'b self, key: &dyn Val) -> Result<CowVal<'b, 'w>, ExecutionError>
    where
        Self: 'w,
    {
        match key.downcast_ref::<CelString>() {
            Some(name) => match self.fields.get(name.inner()) {
                Some(value) => Ok(CowVal::Owned(lazy_val(value))),
                None => Err(ExecutionError::NoSuchKey(Arc::new(
                    name.inner().to_string(),
                ))),
            },
            None => self.whole().get(key),
        }
    }

    fn steal<'w>(self: Box<Self>, key: &dyn Val) -> Result<Box<dyn Val + 'w>, ExecutionError>
    where
        Self: 'w,
    {
        self.get(key).map(CowVal::into_owned)
    }
}

impl Sizer for JsonMap<'_> {
    fn size(&self) -> CelInt {
        CelInt::from(self.fields.len() as i64)
    }
}

impl Zeroer for JsonMap<'_> {
    fn is_zero_value(&self) -> bool {
        self.fields.is_empty()
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
        Json::Object(fields) => Box::new(eager_map(fields)),
    }
}

/// A JSON object converted whole, as [`to_val`] converts.
fn eager_map<'a>(fields: &'a serde_json::Map<String, serde_json::Value>) -> CelMap<'a> {
    CelMap::from(
        fields
            .iter()
            .map(|(k, v)| (CelMapKey::from(k.as_str()), to_val(v)))
            .collect::<HashMap<_, _>>(),
    )
}

impl VariableResolver for Variables<'_> {
    fn resolve<'b>(&'b self, variable: &str) -> Option<CowVal<'b, 'b>> {
        let cell = match variable {
            "event" => self.event_val.get_or_init(|| (self.convert)(self.event)),
            "data" => self.data_val.get_or_init(|| {
                (self.convert)(self.event.get("data").unwrap_or(&serde_json::Value::Null))
            }),
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

    /// The variables converted whole, as before [`JsonMap`]: the reference the lazy maps are
    /// held to.
    struct EagerInput<'a> {
        event: Box<dyn Val + 'a>,
        data: Box<dyn Val + 'a>,
    }

    impl VariableResolver for EagerInput<'_> {
        fn resolve<'b>(&'b self, variable: &str) -> Option<CowVal<'b, 'b>> {
            match variable {
                "event" => Some(CowVal::Borrowed(self.event.as_ref())),
                "data" => Some(CowVal::Borrowed(self.data.as_ref())),
                _ => None,
            }
        }
    }

    #[test]
    fn lazy_maps_evaluate_every_operation_as_eager_conversion_does() {
        let event = json!({
            "id": "e-1",
            "type": "order.paid",
            "tenant": "m-7",
            "data": {
                "currency": "CNY", "total_amount": "129.90", "count": 3, "delta": -2,
                "ratio": 0.5, "paid": true, "coupon": null,
                "items": [{"sku": "a", "quantity": 2}, {"sku": "b", "quantity": 1}],
                "buyer": {"id": "u-1", "tags": ["vip"]}
            }
        });
        let expressions = [
            "data.currency == 'CNY'",
            "data['currency'] == 'CNY'",
            "event.data.buyer.id == 'u-1'",
            "data.buyer.tags[0] == 'vip'",
            "data.items[1].quantity == 1u",
            "data.count > 2u && data.delta < 0 && data.ratio == 0.5",
            "data.paid",
            "data.coupon == null",
            "has(data.coupon) && !has(data.missing) && has(data.buyer.id)",
            "'currency' in data && !('missing' in data)",
            "1 in data",
            "size(data) == 9 && data.size() == 9 && size(data.buyer) == 2",
            "data.exists(k, k == 'items') && data.all(k, k != '')",
            "data.items.exists(i, i.sku == 'b') && data.items.all(i, i.quantity > 0u)",
            "data.items.map(i, i.sku) == ['a', 'b']",
            "data.buyer == {'id': 'u-1', 'tags': ['vip']}",
            "{'id': 'u-1', 'tags': ['vip']} == data.buyer",
            "data.buyer != {'id': 'u-2', 'tags': ['vip']}",
            "data == event.data && event.data == data && data.buyer != data",
            "[data.buyer] == [data.buyer] && data.buyer in [data.items[0], data.buyer]",
            "data.items[0] != data.items[1] && data.buyer.tags == ['vip']",
            "[data.buyer] == [{'id': 'u-1', 'tags': ['vip']}]",
            "type(data) == type({'a': 1}) && type(data.items) == type([1])",
            "data.?coupon.hasValue() && !data.?missing.hasValue()",
            "data[1] == 'x'",
            "data.missing == 1",
            "data.buyer",
            "event.data.buyer.tags",
            "double(data.total_amount) >= 100.0",
        ];
        let input = FilterInput::new(&event);
        let eager = EagerInput {
            event: to_val(&event),
            data: to_val(&event["data"]),
        };
        let mut lazily = 0;
        for expression in expressions {
            let filter = Filter::compile(expression).unwrap();
            lazily += usize::from(filter.lazy);
            let mut context = Context::with_env(STDLIB.clone());
            context.set_variable_resolver(&eager);
            let expected = filter.program.execute(&context);
            let mut context = Context::with_env(STDLIB.clone());
            context.set_variable_resolver(input.view(filter.lazy));
            let got = filter.program.execute(&context);
            let boolean = matches!(expected, Ok(Value::Bool(_)));
            match (&got, &expected) {
                // A map result is an error either way for a filter; only the message differs.
                (Err(_), Ok(Value::Map(_))) => {}
                _ => assert_eq!(
                    got.map_err(|e| e.to_string()),
                    expected.map_err(|e| e.to_string()),
                    "{expression}"
                ),
            }
            assert_eq!(filter.matches(&input).is_ok(), boolean, "{expression}");
        }
        assert_eq!(
            lazily,
            expressions.len() - 5,
            "only map literals convert whole"
        );
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
