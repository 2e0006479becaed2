//! `/v1/replays`: routing a time window of an event topic again for one subscription (after
//! an endpoint outage, say), with its progress. Replays run in the admin process; their
//! state is kept in memory, so a restart forgets finished ones (the notifications they wrote
//! are in Kafka and are delivered regardless).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use herald_router::replay::{ReplayProgress, ReplayRequest};
use herald_router::route::EventGate;
use herald_router::{Router, RouterConfig};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{AppState, parse_time};
use crate::auth::Caller;
use crate::error::{ApiError, Body, ErrorBody};

/// A replay to start.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartReplay {
    /// The subscription whose notifications are made again.
    pub subscription_id: String,
    /// The event topic, e.g. `events.order`.
    pub topic: String,
    /// The window's start, RFC 3339 (included).
    pub from: String,
    /// The window's end, RFC 3339 (excluded).
    pub to: String,
}

/// A replay and how far it got.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Replay {
    /// Its id.
    pub replay_id: String,
    /// The subscription.
    pub subscription_id: String,
    /// The app that owns the subscription.
    pub app_id: String,
    /// The topic.
    pub topic: String,
    /// `running`, `completed` or `failed`.
    pub state: String,
    /// Offsets of the window read so far.
    pub read: u64,
    /// Offsets in the window.
    pub total: u64,
    /// Notifications written.
    pub notifications: u64,
    /// Why it failed.
    pub error: Option<String>,
}

fn update(state: &AppState, id: &str, change: impl FnOnce(&mut Replay)) {
    if let Some(replay) = state
        .replays
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_mut(id)
    {
        change(replay);
    }
}

fn progress(replay: &mut Replay, p: &ReplayProgress) {
    replay.read = p.read;
    replay.total = p.total;
    replay.notifications = p.notifications;
}

/// Starts a replay; answers at once with its id.
#[utoipa::path(post, path = "/v1/replays", tag = "replays", request_body = StartReplay,
    responses((status = 202, body = Replay), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn start_replay(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Body(input): Body<StartReplay>,
) -> Result<(StatusCode, Json<Replay>), ApiError> {
    let sub = state
        .views
        .subscription(&input.subscription_id)
        .filter(|s| caller.owns(&s.app_id))
        .ok_or_else(|| ApiError::not_found("subscription", &input.subscription_id))?;
    let from_ms = parse_time("from", Some(&input.from))?.unwrap_or_default();
    let to_ms = parse_time("to", Some(&input.to))?.unwrap_or_default();
    if to_ms <= from_ms {
        return Err(ApiError::invalid("to", "to must be after from"));
    }
    // Event topics only: Herald's own topics hold no events.
    if input.topic.is_empty()
        || input
            .topic
            .starts_with(&format!("{}.", state.names.prefix()))
    {
        return Err(ApiError::invalid(
            "topic",
            "name an event topic, such as events.order",
        ));
    }
    let replay = Replay {
        replay_id: format!("rpl_{}", uuid::Uuid::new_v4().simple()),
        subscription_id: sub.subscription_id.clone(),
        app_id: sub.app_id.clone(),
        topic: input.topic.clone(),
        state: "running".to_owned(),
        read: 0,
        total: 0,
        notifications: 0,
        error: None,
    };
    state
        .replays
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(replay.replay_id.clone(), replay.clone());
    state
        .audit
        .record(
            &caller,
            "replay",
            "subscription",
            &sub.subscription_id,
            None,
        )
        .await?;
    let mut config = RouterConfig::new("");
    config.kafka = state.config.kafka.clone();
    config.topic_prefix = state.names.prefix().to_owned();
    config.registry_url = state.config.registry.clone();
    config.schemas_dir = state.config.schemas.clone();
    let request = ReplayRequest {
        topic: input.topic,
        from_ms,
        to_ms,
        gate: EventGate {
            types: None,
            filter: None,
        },
        subscription: Some(sub.subscription_id),
        fresh_ids: false,
    };
    let id = replay.replay_id.clone();
    let shared = state.clone();
    tokio::spawn(async move {
        let outcome = match Router::build(config).await {
            Err(e) => Err(e.to_string()),
            Ok(router) => {
                let handle = tokio::runtime::Handle::current();
                let (state, id) = (shared.clone(), id.clone());
                tokio::task::spawn_blocking(move || {
                    let stop = AtomicBool::new(false);
                    router
                        .replay(&request, &stop, handle, |p| {
                            update(&state, &id, |r| progress(r, p))
                        })
                        .map_err(|e| e.to_string())
                })
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r)
            }
        };
        update(&shared, &id, |r| match outcome {
            Ok(done) => {
                progress(r, &done);
                r.state = "completed".to_owned();
            }
            Err(error) => {
                r.state = "failed".to_owned();
                r.error = Some(error);
            }
        });
    });
    Ok((StatusCode::ACCEPTED, Json(replay)))
}

/// A replay's state.
#[utoipa::path(get, path = "/v1/replays/{replay_id}", tag = "replays",
    params(("replay_id" = String, Path, description = "The replay id")),
    responses((status = 200, body = Replay), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_replay(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Replay>, ApiError> {
    state
        .replays
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&id)
        .filter(|r| caller.owns(&r.app_id))
        .cloned()
        .map(Json)
        .ok_or_else(|| ApiError::not_found("replay", &id))
}
