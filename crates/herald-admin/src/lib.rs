//! `herald admin`: the HTTP API (and, served beside it, the console) through which third-party
//! developers manage their own subscriptions and see what happened to every event, and
//! platform operators see everything.
//!
//! Kafka stays the only source of truth: writes go to the compacted topics (`herald.apps`,
//! `herald.subscriptions`), and a write answers only once the service's own view has read it
//! back (read-your-writes); the delivery log is `herald.attempts` materialized into SQLite.
//! Every change is also recorded in `herald.audit`.
//!
//! # Layout
//! - [`error`]: JSON errors with a field path.
//! - [`auth`]: the operator token and app API keys; who is calling.
//! - [`views`]: apps and subscriptions followed from their topics, with read-your-writes.
//! - [`log`]: the delivery log and the ingest idempotency keys in SQLite.
//! - [`audit`]: the audit trail.
//! - [`api`]: the routes, one module per resource, and the OpenAPI document.
//! - [`console`]: the web UI.

pub mod api;
pub mod audit;
pub mod auth;
pub mod console;
pub mod error;
pub mod log;
pub mod views;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use herald_contract::Catalog;
use herald_contract::registry::{RegistryClient, RegistryConfig};
use herald_contract::subjects::SubjectStrategy;
use herald_core::topics::TopicNames;
use herald_deliver::channels::webhook::WebhookConfig;
use herald_deliver::secrets::MasterKey;
use herald_kafka::{KafkaConfig, TopicSpec};

/// How the admin service runs.
#[derive(Clone)]
pub struct AdminConfig {
    /// The Kafka cluster.
    pub kafka: KafkaConfig,
    /// Prefix of Herald's topics.
    pub topic_prefix: String,
    /// The schema registry's Confluent-compatible base URL (for event ingest); without one,
    /// ingested events are written in Avro single-object encoding with the catalogue's schema.
    pub registry: Option<String>,
    /// The schema catalogue directory (`schemas/`); the catalogue built into the binary when
    /// unset.
    pub schemas: Option<PathBuf>,
    /// Subject naming of the event schemas in the registry.
    pub strategy: SubjectStrategy,
    /// Encrypts the apps' signing secrets.
    pub master_key: MasterKey,
    /// The platform operators' bearer token.
    pub operator_token: String,
    /// Where the API listens.
    pub listen: SocketAddr,
    /// The SQLite file of the delivery log; in memory (rebuilt from `herald.attempts` at each
    /// start) when unset.
    pub database: Option<PathBuf>,
    /// Attempts older than this leave the delivery log.
    pub log_retention: Duration,
    /// How long a write waits to read itself back before it answers 504.
    pub write_timeout: Duration,
    /// How test sends reach receivers (the SSRF guard's allow-list among them).
    pub webhook: WebhookConfig,
}

impl AdminConfig {
    /// Defaults: listen on 127.0.0.1:8070, an in-memory log kept 7 days.
    pub fn new(brokers: &str, master_key: MasterKey, operator_token: impl Into<String>) -> Self {
        Self {
            kafka: KafkaConfig::new(brokers),
            topic_prefix: "herald".to_owned(),
            registry: Some("http://127.0.0.1:8081/apis/ccompat/v7".to_owned()),
            schemas: None,
            strategy: SubjectStrategy::TopicName,
            master_key,
            operator_token: operator_token.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8070)),
            database: None,
            log_retention: Duration::from_secs(7 * 24 * 3600),
            write_timeout: Duration::from_secs(10),
            webhook: WebhookConfig::default(),
        }
    }
}

/// Why the service did not start.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Kafka refused something.
    #[error(transparent)]
    Kafka(#[from] herald_kafka::KafkaError),
    /// Another start-up step failed.
    #[error("{0}")]
    Start(String),
}

/// The topics the admin service reads and writes, created when missing.
pub fn topics(names: &TopicNames) -> Vec<TopicSpec> {
    vec![
        TopicSpec::new(names.apps(), 1).config("cleanup.policy", "compact"),
        TopicSpec::new(names.subscriptions(), 1).config("cleanup.policy", "compact"),
        TopicSpec::new(names.attempts(), 6)
            .config("retention.ms", (30_u64 * 24 * 3600 * 1000).to_string()),
        TopicSpec::new(names.audit(), 1)
            .config("retention.ms", (365_u64 * 24 * 3600 * 1000).to_string()),
    ]
}

/// Creates the topics, loads the views and the log, then serves until `stop` is set. Sends
/// the bound address through `bound` once it listens.
pub async fn serve(
    config: AdminConfig,
    stop: Arc<AtomicBool>,
    bound: tokio::sync::oneshot::Sender<SocketAddr>,
) -> Result<(), AdminError> {
    let names = TopicNames::with_prefix(&config.topic_prefix)
        .map_err(|e| AdminError::Start(e.to_string()))?;
    herald_kafka::Admin::new(&config.kafka)?
        .ensure_topics(&topics(&names))
        .await?;
    let catalog = match &config.schemas {
        Some(dir) => Catalog::load_dir(dir).map_err(|e| {
            AdminError::Start(format!(
                "loading the schema catalogue {}: {e}",
                dir.display()
            ))
        })?,
        None => Catalog::builtin().as_ref().clone(),
    };
    let registry = config
        .registry
        .as_ref()
        .map(|url| {
            RegistryClient::new(&RegistryConfig::new(url.clone()))
                .map_err(|e| AdminError::Start(format!("registry {url}: {e}")))
        })
        .transpose()?;
    let log = Arc::new(
        log::DeliveryLog::open(config.database.as_deref(), config.log_retention)
            .map_err(|e| AdminError::Start(format!("opening the delivery log: {e}")))?,
    );
    let views = Arc::new(views::Views::new(config.master_key.clone()));
    let followers = {
        let (kafka, names, views, log, stop) = (
            config.kafka.clone(),
            names.clone(),
            views.clone(),
            log.clone(),
            stop.clone(),
        );
        tokio::task::spawn_blocking(move || -> Result<_, AdminError> {
            let mut handles = views::follow(&kafka, &names, views, stop.clone())?;
            handles.push(log::follow(&kafka, &names.attempts(), log, stop)?);
            Ok(handles)
        })
        .await
        .map_err(|e| AdminError::Start(e.to_string()))??
    };
    let state = api::AppState::new(config.clone(), names, catalog, registry, views, log)?;
    let router = api::router(Arc::new(state));
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| AdminError::Start(format!("listening on {}: {e}", config.listen)))?;
    let address = listener
        .local_addr()
        .map_err(|e| AdminError::Start(e.to_string()))?;
    let _ = bound.send(address);
    tracing::info!(%address, "admin API listening");
    let stopping = stop.clone();
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            while !stopping.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await;
    stop.store(true, Ordering::SeqCst);
    for handle in followers {
        let _ = tokio::task::spawn_blocking(move || handle.join()).await;
    }
    served.map_err(|e| AdminError::Start(format!("serving: {e}")))
}
