//! The pull inbox, `herald inbox`: apps without a public address fetch their notifications
//! over HTTP instead of receiving webhooks (as Taobao's message service and DingTalk's stream
//! mode offer). Subscriptions on the `inbox` channel route to `herald.notify.inbox`; this
//! service follows that topic and `herald.inbox.acks` (compacted, one record per acknowledged
//! notification), so Kafka stays the only source of truth and a restart loses nothing.
//!
//! - `GET /v1/inbox?cursor=&limit=&wait=`: up to `limit` (default 100, at most 1,000) visible
//!   messages after `cursor`, waiting up to `wait` seconds (at most 30) for one to arrive.
//!   Each message returned is hidden for the visibility timeout; if it is not acknowledged by
//!   then it comes back.
//! - `POST /v1/inbox/ack` with `{"ids": [...]}`: acknowledges messages; they never come back.
//! - `GET /v1/inbox/stream?cursor=`: Server-Sent Events, one `message` event per notification
//!   as it arrives (after `cursor`, or from now on).
//!
//! `GET /metrics` serves its Prometheus metrics (`herald_inbox_http_requests_total`,
//! `herald_inbox_http_request_seconds`).
//!
//! Every route takes an app API key (`Authorization: Bearer hk_…`) and sees only that app's
//! messages. Errors are JSON: `{"error": "<code>", "message": "<what to do>"}`.
//!
//! # Layout
//! - [`store`]: the per-app messages, leases and acknowledgements.
//! - [`auth`]: app API keys, hashed with Argon2 in `herald.apps`.

pub mod auth;
pub mod store;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use herald_contract::RecordCodec;
use herald_core::Notification;
use herald_core::topics::TopicNames;
use herald_kafka::{KafkaConfig, RecordProducer, TopicSpec, follow};
use serde::Deserialize;
use serde_json::json;

use auth::ApiKeys;
use store::{Entry, InboxStore};

/// How the inbox service runs.
#[derive(Debug, Clone)]
pub struct InboxConfig {
    /// The Kafka cluster.
    pub kafka: KafkaConfig,
    /// Prefix of Herald's topics.
    pub topic_prefix: String,
    /// Where the HTTP API listens.
    pub listen: SocketAddr,
    /// How long a message handed out stays hidden unless acknowledged.
    pub visibility_timeout: Duration,
    /// Partitions of the topics created when missing.
    pub partitions: i32,
}

impl InboxConfig {
    /// Defaults: listen on 127.0.0.1:8090, a 30 s visibility timeout.
    pub fn new(brokers: &str) -> Self {
        Self {
            kafka: KafkaConfig::new(brokers),
            topic_prefix: "herald".to_owned(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8090)),
            visibility_timeout: Duration::from_secs(30),
            partitions: 6,
        }
    }
}

struct AppState {
    store: Arc<InboxStore>,
    keys: Arc<ApiKeys>,
    producer: RecordProducer,
    acks_topic: String,
    visibility: Duration,
}

/// The acks topic's name.
pub fn acks_topic(names: &TopicNames) -> String {
    format!("{}.inbox.acks", names.prefix())
}

/// Creates the topics, loads the inbox, the acknowledgements and the apps' keys, serves the
/// API until `stop` is set. Returns the bound address through `bound` once listening.
pub async fn serve(
    config: InboxConfig,
    stop: Arc<AtomicBool>,
    bound: tokio::sync::oneshot::Sender<SocketAddr>,
) -> Result<(), String> {
    let names = TopicNames::with_prefix(&config.topic_prefix).map_err(|e| e.to_string())?;
    let inbox_topic = names
        .notify(&herald_core::topics::ChannelName::parse("inbox").expect("a valid channel name"));
    let acks = acks_topic(&names);
    let admin = herald_kafka::Admin::new(&config.kafka).map_err(|e| e.to_string())?;
    admin
        .ensure_topics(&[
            TopicSpec::new(inbox_topic.clone(), config.partitions),
            TopicSpec::new(acks.clone(), config.partitions).config("cleanup.policy", "compact"),
            TopicSpec::new(names.apps(), 1).config("cleanup.policy", "compact"),
        ])
        .await
        .map_err(|e| e.to_string())?;
    let store = Arc::new(InboxStore::default());
    let keys = Arc::new(ApiKeys::default());
    let kafka = config.kafka.clone();
    let loaders = {
        let store = store.clone();
        let keys = keys.clone();
        let acks = acks.clone();
        let apps = names.apps();
        let follow_stop = stop.clone();
        tokio::task::spawn_blocking(
            move || -> Result<Vec<std::thread::JoinHandle<()>>, String> {
                // Acknowledgements first, so acknowledged messages are never shown while loading.
                let acked = store.clone();
                let acks_follower =
                    follow::load_then_follow(&kafka, &acks, follow_stop.clone(), move |r| {
                        if let Some(key) = &r.key {
                            acked.acknowledge(&String::from_utf8_lossy(key));
                        }
                    })
                    .map_err(|e| e.to_string())?;
                let codec = RecordCodec::notification();
                let added = store.clone();
                let inbox_follower =
                    follow::load_then_follow(&kafka, &inbox_topic, follow_stop.clone(), move |r| {
                        match r.value.as_deref().map(|v| codec.decode::<Notification>(v)) {
                            Some(Ok(n)) => added.add(n),
                            Some(Err(error)) => {
                                tracing::warn!(%error, offset = r.offset, "inbox record refused")
                            }
                            None => {}
                        }
                    })
                    .map_err(|e| e.to_string())?;
                let app_codec = RecordCodec::builtin("dev.herald.App");
                let apps_follower =
                    follow::load_then_follow(&kafka, &apps, follow_stop, move |r| {
                        keys.apply(&app_codec, r)
                    })
                    .map_err(|e| e.to_string())?;
                Ok(vec![acks_follower, inbox_follower, apps_follower])
            },
        )
    };
    let followers = loaders.await.map_err(|e| e.to_string())??;
    let state = Arc::new(AppState {
        store,
        keys,
        producer: RecordProducer::new(&config.kafka).map_err(|e| e.to_string())?,
        acks_topic: acks,
        visibility: config.visibility_timeout,
    });
    let app = Router::new()
        .route("/v1/inbox", get(take))
        .route("/v1/inbox/ack", post(ack))
        .route("/v1/inbox/stream", get(stream))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(state);
    let metrics = crate::http_metrics::HttpMetrics::new("herald_inbox")
        .map_err(|e| format!("metrics: {e}"))?;
    let app = crate::http_metrics::instrument(app, Arc::new(metrics));
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("listening on {}: {e}", config.listen))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    let _ = bound.send(address);
    tracing::info!(%address, "inbox listening");
    let shutdown_stop = stop.clone();
    let shutdown = async move {
        while !shutdown_stop.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| e.to_string());
    stop.store(true, Ordering::SeqCst);
    for follower in followers {
        let _ = tokio::task::spawn_blocking(move || follower.join()).await;
    }
    served
}

/// A JSON error: the status, a code programs branch on, and a message people read.
struct ApiError(StatusCode, &'static str, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1, "message": self.2}))).into_response()
    }
}

fn error(status: StatusCode, code: &'static str, message: impl Into<String>) -> Response {
    ApiError(status, code, message.into()).into_response()
}

/// The app the request's key belongs to, or the 401 to answer.
fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<String, ApiError> {
    let key = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            ApiError(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "send the app's API key as Authorization: Bearer hk_…".to_owned(),
            )
        })?;
    state.keys.app_of(key).ok_or_else(|| {
        ApiError(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the API key is unknown or revoked".to_owned(),
        )
    })
}

fn message_json(entry: &Entry) -> serde_json::Value {
    let n = &entry.notification;
    let payload = serde_json::from_str::<serde_json::Value>(&n.payload)
        .unwrap_or_else(|_| serde_json::Value::String(n.payload.clone()));
    json!({
        "id": n.notification_id,
        "cursor": entry.seq.to_string(),
        "event_id": n.event_id,
        "event_type": n.event_type,
        "subscription_id": n.subscription_id,
        "content_type": n.content_type,
        "payload": payload,
        "created_at": n.created_at,
    })
}

#[derive(Deserialize)]
struct TakeQuery {
    cursor: Option<String>,
    limit: Option<usize>,
    wait: Option<u64>,
}

fn parse_cursor(cursor: Option<&str>) -> Result<Option<u64>, ApiError> {
    cursor
        .filter(|c| !c.is_empty())
        .map(|c| {
            c.parse::<u64>().map_err(|_| {
                ApiError(
                    StatusCode::BAD_REQUEST,
                    "invalid_cursor",
                    format!("cursor {c:?} is not one this inbox handed out"),
                )
            })
        })
        .transpose()
}

async fn take(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query<TakeQuery>,
) -> Response {
    let app = match authenticate(&state, &headers) {
        Ok(app) => app,
        Err(response) => return response.into_response(),
    };
    let cursor = match parse_cursor(query.cursor.as_deref()) {
        Ok(cursor) => cursor,
        Err(response) => return response.into_response(),
    };
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_limit",
            "limit must be 1 to 1000",
        );
    }
    let wait = Duration::from_secs(query.wait.unwrap_or(0).min(30));
    let deadline = tokio::time::Instant::now() + wait;
    let mut arrivals = state.store.arrivals();
    loop {
        arrivals.borrow_and_update();
        let taken = state.store.take(&app, cursor, limit, state.visibility);
        if !taken.is_empty() || tokio::time::Instant::now() >= deadline {
            let next = taken.last().map(|e| e.seq).or(cursor);
            return Json(json!({
                "messages": taken.iter().map(message_json).collect::<Vec<_>>(),
                "cursor": next.map(|c| c.to_string()),
            }))
            .into_response();
        }
        // Wake on an arrival, or in a second at most (a lease may have expired meanwhile).
        let _ = tokio::time::timeout_at(
            deadline.min(tokio::time::Instant::now() + Duration::from_secs(1)),
            arrivals.changed(),
        )
        .await;
    }
}

#[derive(Deserialize)]
struct AckBody {
    ids: Vec<String>,
}

async fn ack(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Json<AckBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let app = match authenticate(&state, &headers) {
        Ok(app) => app,
        Err(response) => return response.into_response(),
    };
    let Ok(Json(body)) = body else {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "send {\"ids\": [\"msg_…\", …]}",
        );
    };
    let (mine, unknown): (Vec<String>, Vec<String>) = body
        .ids
        .into_iter()
        .partition(|id| state.store.owns(&app, id));
    let records: Vec<herald_kafka::OutRecord> = mine
        .iter()
        .map(|id| herald_kafka::OutRecord {
            topic: state.acks_topic.clone(),
            key: Some(id.clone().into_bytes()),
            value: Some(herald_core::time::now_ms().to_string().into_bytes()),
            headers: vec![("herald-app-id".to_owned(), app.clone().into_bytes())],
        })
        .collect();
    // Acknowledged once Kafka has it: a crash after this answer loses no acknowledgement.
    if let Err(e) = state.producer.send_all(&records).await {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("the acknowledgement could not be stored, try again: {e}"),
        );
    }
    for id in &mine {
        state.store.acknowledge(id);
    }
    Json(json!({"acked": mine.len(), "unknown": unknown})).into_response()
}

#[derive(Deserialize)]
struct StreamQuery {
    cursor: Option<String>,
}

async fn stream(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query<StreamQuery>,
) -> Response {
    let app = match authenticate(&state, &headers) {
        Ok(app) => app,
        Err(response) => return response.into_response(),
    };
    let cursor = match parse_cursor(query.cursor.as_deref()) {
        Ok(Some(cursor)) => Some(cursor),
        Ok(None) => state.store.last_seq(),
        Err(response) => return response.into_response(),
    };
    let arrivals = state.store.arrivals();
    let events = futures_util::stream::unfold(
        (state, app, cursor, arrivals, Vec::<Entry>::new()),
        |(state, app, mut cursor, mut arrivals, mut pending)| async move {
            loop {
                if let Some(entry) = pending.pop() {
                    cursor = Some(entry.seq);
                    let event = SseEvent::default()
                        .event("message")
                        .id(entry.seq.to_string())
                        .data(message_json(&entry).to_string());
                    return Some((
                        Ok::<_, Infallible>(event),
                        (state, app, cursor, arrivals, pending),
                    ));
                }
                arrivals.borrow_and_update();
                pending = state.store.after(&app, cursor);
                pending.reverse();
                if pending.is_empty() && arrivals.changed().await.is_err() {
                    return None;
                }
            }
        },
    );
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}
