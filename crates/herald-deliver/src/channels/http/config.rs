//! The generic HTTP channel's configuration: a TOML file passed to `herald deliver --channel
//! http --http-template FILE`. Example (a company IM that signs with HMAC-SHA256 and answers
//! `{"code": 0}` on success and `{"code": 429}` when throttled):
//!
//! ```toml
//! method = "POST"
//! url = "https://im.example.com/api/send?to={{ notification.destination }}"
//! body = '{"text": {{ (event.type ~ ": " ~ event.data.order_id) | tojson }}}'
//! [headers]
//! content-type = "application/json"
//! [signing]
//! algorithm = "hmac-sha256"
//! secret = "…"
//! message = "{{ timestamp }}.{{ body }}"
//! header = "X-Signature"
//! encoding = "hex"
//! [rules]
//! json_pointer = "/code"
//! success_values = ["0"]
//! retry_values = ["429"]
//! ```

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

/// The request template.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpTemplate {
    /// The HTTP method.
    #[serde(default = "post")]
    pub method: String,
    /// The URL template.
    pub url: String,
    /// Header templates by name.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The body template; the notification's payload when unset.
    pub body: Option<String>,
    /// How requests are signed, if they are.
    pub signing: Option<Signing>,
    /// Which answers mean success, retry or failure.
    #[serde(default)]
    pub rules: Rules,
}

fn post() -> String {
    "POST".to_owned()
}

impl fmt::Debug for HttpTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpTemplate")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("signing", &self.signing.as_ref().map(|s| s.algorithm))
            .field("rules", &self.rules)
            .finish()
    }
}

/// A signing recipe: an HMAC of a message template, encoded, into a header or a query
/// parameter.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signing {
    /// The MAC.
    pub algorithm: SigningAlgorithm,
    /// The key (never printed).
    pub secret: String,
    /// The message template; it also sees `body`.
    pub message: String,
    /// How the MAC is written.
    #[serde(default)]
    pub encoding: Encoding,
    /// Written before the MAC, e.g. `sha256=`.
    #[serde(default)]
    pub prefix: String,
    /// The header that carries the signature.
    pub header: Option<String>,
    /// The query parameter that carries the signature.
    pub query: Option<String>,
}

/// The MACs a recipe may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum SigningAlgorithm {
    /// HMAC-SHA256.
    #[serde(rename = "hmac-sha256")]
    HmacSha256,
    /// HMAC-SHA1, for older APIs.
    #[serde(rename = "hmac-sha1")]
    HmacSha1,
}

/// How a MAC is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// Lower-case hexadecimal.
    #[default]
    Hex,
    /// Standard base64.
    Base64,
}

/// Which answers mean what. A JSON value in the reply (at `json_pointer`) in `retry_values`
/// retries; a status in `success_status` with, when `success_values` is set, the value in it
/// succeeds; a status in `retry_status` retries; anything else dead-letters. No answer at all
/// (timeout, connection refused) retries.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Rules {
    /// Statuses or ranges (`"200-299"`) of success.
    pub success_status: Vec<String>,
    /// Statuses or ranges that retry.
    pub retry_status: Vec<String>,
    /// A JSON pointer into the reply body, e.g. `/code`.
    pub json_pointer: Option<String>,
    /// Values at the pointer (as text) that mean success.
    pub success_values: Vec<String>,
    /// Values at the pointer that retry, e.g. a rate-limit code.
    pub retry_values: Vec<String>,
    /// How long a retry waits at least, milliseconds.
    pub retry_after_ms: Option<u64>,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            success_status: vec!["200-299".to_owned()],
            retry_status: vec!["408".to_owned(), "429".to_owned(), "500-599".to_owned()],
            json_pointer: None,
            success_values: Vec::new(),
            retry_values: Vec::new(),
            retry_after_ms: None,
        }
    }
}

impl HttpTemplate {
    /// Reads a template from TOML, with errors that name the field.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        let template: Self = toml::from_str(text).map_err(|e| e.to_string())?;
        for range in template
            .rules
            .success_status
            .iter()
            .chain(&template.rules.retry_status)
        {
            let valid = match range.split_once('-') {
                Some((low, high)) => {
                    low.trim().parse::<u16>().is_ok() && high.trim().parse::<u16>().is_ok()
                }
                None => range.trim().parse::<u16>().is_ok(),
            };
            if !valid {
                return Err(format!(
                    "rules: {range:?} is not a status or a range such as 500-599"
                ));
            }
        }
        if let Some(pointer) = &template.rules.json_pointer
            && !pointer.starts_with('/')
        {
            return Err(format!(
                "rules.json_pointer {pointer:?} must start with '/', e.g. /code"
            ));
        }
        if let Some(signing) = &template.signing
            && signing.header.is_none()
            && signing.query.is_none()
        {
            return Err("signing: set header or query (where the signature goes)".to_owned());
        }
        Ok(template)
    }
}
