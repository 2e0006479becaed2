//! The routes of the admin API, one module per resource, and the OpenAPI document generated
//! from them (`GET /openapi.json`). Every route but the probes and the document takes a
//! credential and checks its scope.

pub mod apps;
pub mod catalog;
pub mod dead_letters;
pub mod deliveries;
pub mod events;
pub mod replays;
pub mod subscriptions;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::routing::get;
use herald_contract::Catalog;
use herald_contract::registry::RegistryClient;
use herald_core::topics::TopicNames;
use herald_deliver::channels::webhook::WebhookChannel;
use herald_kafka::{Landed, RecordProducer};
use herald_producer::EventProducer;
use serde::Deserialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::audit::Audit;
use crate::auth::OperatorToken;
use crate::error::ApiError;
use crate::log::DeliveryLog;
use crate::views::Views;
use crate::{AdminConfig, AdminError};

/// Everything the handlers share.
pub struct AppState {
    /// The configuration the service started with.
    pub config: AdminConfig,
    /// Topic names.
    pub names: TopicNames,
    /// The schema catalogue (event types).
    pub catalog: Arc<Catalog>,
    /// Produces ingested events.
    pub events: EventProducer,
    /// Apps and subscriptions.
    pub views: Arc<Views>,
    /// The delivery log.
    pub log: Arc<DeliveryLog>,
    /// Writes apps, subscriptions and tombstones.
    pub producer: RecordProducer,
    /// The audit trail.
    pub audit: Audit,
    /// The operator token's digest.
    pub operator: OperatorToken,
    /// Read-modify-write changes of one service run one at a time, so two changes of the same
    /// record cannot both start from the same version.
    pub write_lock: tokio::sync::Mutex<()>,
    /// Ingests with an idempotency key run one at a time, so a retry racing the original
    /// finds its answer instead of producing again.
    pub ingest_lock: tokio::sync::Mutex<()>,
    /// Sends test deliveries.
    pub webhook: WebhookChannel,
    /// Replays started through the API.
    pub replays: Mutex<HashMap<String, replays::Replay>>,
    /// Request counts and latencies, served at `GET /metrics`.
    pub metrics: Arc<herald_deliver::http_metrics::HttpMetrics>,
}

impl AppState {
    /// Builds the shared state.
    pub fn new(
        config: AdminConfig,
        names: TopicNames,
        catalog: Catalog,
        registry: Option<RegistryClient>,
        views: Arc<Views>,
        log: Arc<DeliveryLog>,
    ) -> Result<Self, AdminError> {
        let catalog = Arc::new(catalog);
        let events = match registry {
            Some(registry) => EventProducer::new(
                &config.kafka,
                registry,
                catalog.clone(),
                config.strategy,
                "herald-admin",
            ),
            None => EventProducer::single_object(&config.kafka, catalog.clone(), "herald-admin"),
        }
        .map_err(|e| AdminError::Start(e.to_string()))?;
        let producer = RecordProducer::new(&config.kafka)?;
        let audit = Audit::new(producer.clone(), names.audit());
        let webhook = WebhookChannel::new(&config.webhook).map_err(AdminError::Start)?;
        Ok(Self {
            operator: OperatorToken::new(&config.operator_token),
            config,
            names,
            catalog,
            events,
            views,
            log,
            producer,
            audit,
            write_lock: tokio::sync::Mutex::new(()),
            ingest_lock: tokio::sync::Mutex::new(()),
            webhook,
            replays: Mutex::default(),
            metrics: Arc::new(
                herald_deliver::http_metrics::HttpMetrics::new("herald_admin")
                    .map_err(|e| AdminError::Start(format!("metrics: {e}")))?,
            ),
        })
    }

    /// Writes a record of a compacted topic the views follow (a tombstone when `value` is
    /// `None`) and waits until the views have read it back.
    pub async fn write_and_wait(
        &self,
        topic: &str,
        key: &str,
        value: Option<&[u8]>,
    ) -> Result<Landed, ApiError> {
        let landed = self
            .producer
            .send(topic, Some(key.as_bytes()), value, &[])
            .await?;
        if !self
            .views
            .wait_for(topic, landed, self.config.write_timeout)
            .await
        {
            return Err(ApiError::timeout(format!(
                "the change was written to {topic} but not read back within {:?}; it will show shortly",
                self.config.write_timeout
            )));
        }
        Ok(landed)
    }
}

/// Paging parameters shared by the list routes.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Where to continue: the `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1 to 1,000; 100 when unset.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

impl PageParams {
    /// The page size, checked.
    pub fn limit(&self) -> Result<usize, ApiError> {
        match self.limit {
            None => Ok(100),
            Some(n @ 1..=1000) => Ok(n),
            Some(_) => Err(ApiError::invalid(
                "limit",
                "limit must be between 1 and 1000",
            )),
        }
    }
}

/// Pages a list sorted by id: the items after the cursor id, and the next cursor.
pub fn page_by_id<T>(
    items: Vec<T>,
    id: impl Fn(&T) -> &str,
    params: &PageParams,
) -> Result<(Vec<T>, Option<String>), ApiError> {
    let limit = params.limit()?;
    let mut rest: Vec<T> = match &params.cursor {
        None => items,
        Some(after) => items
            .into_iter()
            .filter(|item| id(item) > after.as_str())
            .collect(),
    };
    let next = if rest.len() > limit {
        rest.truncate(limit);
        rest.last().map(|item| id(item).to_owned())
    } else {
        None
    };
    Ok((rest, next))
}

/// Parses an RFC 3339 query parameter to epoch milliseconds.
pub fn parse_time(field: &str, text: Option<&str>) -> Result<Option<i64>, ApiError> {
    text.map(|t| {
        chrono::DateTime::parse_from_rfc3339(t)
            .map(|at| at.timestamp_millis())
            .map_err(|_| {
                ApiError::invalid(
                    field,
                    format!("{t:?} is not an RFC 3339 time such as 2026-12-04T10:00:00Z"),
                )
            })
    })
    .transpose()
}

/// The OpenAPI document's frame: title, security scheme, tags.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Herald admin API",
        description = "Apps, subscriptions, the event catalogue, the delivery log, dead letters, event ingest and replays. Authenticate with `Authorization: Bearer <operator token>` or an app API key (`hk_…`); an app key sees and changes only its own app.",
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "apps", description = "Third-party applications, their API keys and signing secrets"),
        (name = "subscriptions", description = "Which events an app receives, where and how"),
        (name = "event-types", description = "The event catalogue"),
        (name = "deliveries", description = "The delivery log"),
        (name = "dead-letters", description = "Notifications that failed for good"),
        (name = "events", description = "Event ingest over HTTP"),
        (name = "replays", description = "Routing a time window again"),
    )
)]
struct ApiDoc;

struct BearerAuth;

/// Documents on every operation the refusals any of them can give, so the document matches
/// what the service answers: 401 and 503 everywhere, 422 where there are parameters, 400, 415
/// and 422 where there is a body, 504 on writes (written, not yet read back).
struct CommonErrors;

impl Modify for CommonErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let error = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
        };
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                (&mut item.get, false),
                (&mut item.post, true),
                (&mut item.put, true),
                (&mut item.delete, true),
            ];
            for (operation, write) in operations {
                let Some(operation) = operation else { continue };
                let mut codes = vec![
                    ("401", "No credentials, or unknown ones"),
                    ("503", "Kafka or the schema registry is unavailable"),
                ];
                if operation.parameters.as_ref().is_some_and(|p| !p.is_empty()) {
                    codes.push(("422", "A parameter is invalid; `field` names it"));
                }
                if operation.request_body.is_some() {
                    codes.push(("400", "The body is not JSON"));
                    codes.push(("415", "The body is not `application/json`"));
                    codes.push(("422", "A field is invalid; `field` names it"));
                }
                if write {
                    codes.push(("504", "Written, but not read back in time"));
                }
                for (code, description) in codes {
                    operation
                        .responses
                        .responses
                        .entry(code.to_owned())
                        .or_insert_with(|| error(description).into());
                }
            }
        }
    }
}

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The API's routes, the probes and `/openapi.json`.
pub fn router(state: Arc<AppState>) -> axum::Router {
    let (api, mut document) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(apps::create_app, apps::list_apps))
        .routes(routes!(apps::get_app))
        .routes(routes!(apps::issue_key))
        .routes(routes!(apps::revoke_key))
        .routes(routes!(apps::rotate_secret))
        .routes(routes!(
            subscriptions::create_subscription,
            subscriptions::list_subscriptions
        ))
        .routes(routes!(
            subscriptions::get_subscription,
            subscriptions::replace_subscription,
            subscriptions::delete_subscription
        ))
        .routes(routes!(subscriptions::enable_subscription))
        .routes(routes!(subscriptions::disable_subscription))
        .routes(routes!(subscriptions::test_send))
        .routes(routes!(catalog::list_event_types))
        .routes(routes!(catalog::get_event_type))
        .routes(routes!(deliveries::list_deliveries))
        .routes(routes!(dead_letters::list_dead_letters))
        .routes(routes!(dead_letters::get_dead_letter))
        .routes(routes!(dead_letters::redrive_dead_letters))
        .routes(routes!(events::ingest_event))
        .routes(routes!(replays::start_replay))
        .routes(routes!(replays::get_replay))
        .with_state(state.clone())
        .split_for_parts();
    // After the split: the frame's modifiers run before the routes add their paths.
    CommonErrors.modify(&mut document);
    let document = Arc::new(document);
    let api = api
        .route(
            "/openapi.json",
            get(move || {
                let document = document.clone();
                async move { Json(document.as_ref().clone()) }
            }),
        )
        .merge(crate::console::routes(state.clone()))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ready" }))
        .fallback(|uri: axum::http::Uri| async move { ApiError::not_found("route", uri.path()) });
    herald_deliver::http_metrics::instrument(api, state.metrics.clone())
}

/// How long a synchronous test send may take.
pub const TEST_SEND_TIMEOUT: Duration = Duration::from_secs(20);
