//! A client of the Confluent-compatible schema registry API (Confluent Schema Registry,
//! Apicurio's `/apis/ccompat/v7`, Karapace), with a bounded cache of parsed schemas by id.
//!
//! Written on reqwest rather than taken from a registry crate because Herald needs two things
//! those crates do not give together: errors typed by what the caller should do (retry later
//! versus dead-letter now) and a cache with an upper bound, so that a flood of records with
//! random schema ids cannot grow memory without limit.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::schema::SchemaEntry;

/// What went wrong talking to the registry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// The registry could not be reached, timed out or answered 5xx; try again later.
    #[error("schema registry at {url} is unavailable: {detail}")]
    Unavailable {
        /// The URL asked.
        url: String,
        /// The transport error or status.
        detail: String,
    },
    /// The registry does not know the schema id or subject.
    #[error("schema registry has no {what}")]
    NotFound {
        /// What was looked up.
        what: String,
    },
    /// The registry refused the request (an incompatible or invalid schema, say).
    #[error("schema registry refused {url}: HTTP {status}: {body}")]
    Refused {
        /// The URL asked.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The registry's explanation.
        body: String,
    },
    /// The registry returned a schema that does not parse.
    #[error("schema {id} from the registry does not parse: {detail}")]
    InvalidSchema {
        /// The schema id.
        id: u32,
        /// The parser's message.
        detail: String,
    },
}

/// How to reach the registry.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// Base URL of the Confluent-compatible API, e.g.
    /// `http://127.0.0.1:8081/apis/ccompat/v7` for Apicurio.
    pub url: String,
    /// Per-request timeout in milliseconds.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// How many parsed schemas to keep by id.
    #[serde(default = "default_cache_capacity")]
    pub cache_capacity: usize,
}

fn default_timeout_ms() -> u64 {
    5_000
}

fn default_cache_capacity() -> usize {
    1_000
}

impl RegistryConfig {
    /// Defaults for everything but the URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            timeout_ms: default_timeout_ms(),
            cache_capacity: default_cache_capacity(),
        }
    }
}

#[derive(Deserialize)]
struct SchemaById {
    schema: String,
    #[serde(rename = "schemaType", default)]
    schema_type: Option<String>,
}

#[derive(Deserialize)]
struct SubjectVersion {
    id: u32,
    version: i32,
    schema: String,
}

#[derive(Deserialize)]
struct Registered {
    id: u32,
}

#[derive(Serialize)]
struct RegisterRequest<'a> {
    schema: &'a str,
    #[serde(rename = "schemaType")]
    schema_type: &'a str,
}

/// A schema registered under a subject.
#[derive(Debug, Clone)]
pub struct LatestSchema {
    /// The registry's id of the schema.
    pub id: u32,
    /// The subject's version number.
    pub version: i32,
    /// The parsed schema.
    pub entry: Arc<SchemaEntry>,
}

/// A registry client; cheap to clone, and clones share the cache.
#[derive(Clone)]
pub struct RegistryClient {
    base: String,
    http: reqwest::Client,
    by_id: Arc<Mutex<lru::LruCache<u32, Arc<SchemaEntry>>>>,
}

impl RegistryClient {
    /// A client of the registry at `config.url`.
    pub fn new(config: &RegistryConfig) -> Result<Self, RegistryError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.timeout_ms))
            .build()
            .map_err(|e| RegistryError::Unavailable {
                url: config.url.clone(),
                detail: e.to_string(),
            })?;
        let capacity = NonZeroUsize::new(config.cache_capacity.max(1)).unwrap_or(NonZeroUsize::MIN);
        Ok(Self {
            base: config.url.trim_end_matches('/').to_owned(),
            http,
            by_id: Arc::new(Mutex::new(lru::LruCache::new(capacity))),
        })
    }

    /// The base URL of the API.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// The writer schema with this id, from the cache or the registry.
    pub async fn schema_by_id(&self, id: u32) -> Result<Arc<SchemaEntry>, RegistryError> {
        if let Some(entry) = self.cached(id) {
            return Ok(entry);
        }
        let url = format!("{}/schemas/ids/{id}", self.base);
        let found: SchemaById = self
            .get_json(&url, || format!("schema with id {id}"))
            .await?;
        if let Some(kind) = found.schema_type.as_deref()
            && kind != "AVRO"
        {
            return Err(RegistryError::InvalidSchema {
                id,
                detail: format!("it is a {kind} schema, not Avro"),
            });
        }
        let entry = Arc::new(
            SchemaEntry::parse(&found.schema)
                .map_err(|detail| RegistryError::InvalidSchema { id, detail })?,
        );
        self.lock().put(id, entry.clone());
        Ok(entry)
    }

    /// The newest schema registered under `subject`.
    pub async fn latest(&self, subject: &str) -> Result<LatestSchema, RegistryError> {
        let url = format!(
            "{}/subjects/{}/versions/latest",
            self.base,
            encode_path(subject)
        );
        let found: SubjectVersion = self
            .get_json(&url, || format!("subject {subject:?}"))
            .await?;
        let entry = match self.cached(found.id) {
            Some(entry) => entry,
            None => {
                let entry = Arc::new(SchemaEntry::parse(&found.schema).map_err(|detail| {
                    RegistryError::InvalidSchema {
                        id: found.id,
                        detail,
                    }
                })?);
                self.lock().put(found.id, entry.clone());
                entry
            }
        };
        Ok(LatestSchema {
            id: found.id,
            version: found.version,
            entry,
        })
    }

    /// Registers `schema` (Avro JSON text) under `subject` and returns its id. Registering a
    /// schema that is already there returns the existing id.
    pub async fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        let url = format!("{}/subjects/{}/versions", self.base, encode_path(subject));
        let response = self
            .http
            .post(&url)
            .header("Content-Type", "application/vnd.schemaregistry.v1+json")
            .json(&RegisterRequest {
                schema,
                schema_type: "AVRO",
            })
            .send()
            .await
            .map_err(|e| unavailable(&url, &e))?;
        let registered: Registered = read_json(&url, response, || subject.to_owned()).await?;
        Ok(registered.id)
    }

    /// The subjects the registry holds.
    pub async fn subjects(&self) -> Result<Vec<String>, RegistryError> {
        let url = format!("{}/subjects", self.base);
        self.get_json(&url, || "subject list".to_owned()).await
    }

    async fn get_json<T: for<'de> Deserialize<'de>>(
        &self,
        url: &str,
        what: impl FnOnce() -> String,
    ) -> Result<T, RegistryError> {
        let response = self
            .http
            .get(url)
            .header(
                "Accept",
                "application/vnd.schemaregistry.v1+json, application/json",
            )
            .send()
            .await
            .map_err(|e| unavailable(url, &e))?;
        read_json(url, response, what).await
    }

    fn cached(&self, id: u32) -> Option<Arc<SchemaEntry>> {
        self.lock().get(&id).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, lru::LruCache<u32, Arc<SchemaEntry>>> {
        // A panic while holding this lock cannot leave the cache inconsistent (every operation
        // on it is a single call), so a poisoned lock is safe to keep using.
        self.by_id
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

async fn read_json<T: for<'de> Deserialize<'de>>(
    url: &str,
    response: reqwest::Response,
    what: impl FnOnce() -> String,
) -> Result<T, RegistryError> {
    let status = response.status();
    if status == reqwest::StatusCode::NOT_FOUND {
        return Err(RegistryError::NotFound { what: what() });
    }
    if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        return Err(RegistryError::Unavailable {
            url: url.to_owned(),
            detail: format!("HTTP {status}"),
        });
    }
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        return Err(RegistryError::Refused {
            url: url.to_owned(),
            status: status.as_u16(),
            body,
        });
    }
    response.json().await.map_err(|e| unavailable(url, &e))
}

fn unavailable(url: &str, error: &reqwest::Error) -> RegistryError {
    RegistryError::Unavailable {
        url: url.to_owned(),
        detail: error.to_string(),
    }
}

/// Percent-encodes a subject for a URL path; subjects hold dots, dashes and sometimes slashes.
fn encode_path(subject: &str) -> String {
    percent_encoding::utf8_percent_encode(subject, percent_encoding::NON_ALPHANUMERIC).to_string()
}
