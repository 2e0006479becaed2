//! `POST /v1/events`: event ingest for upstream systems that cannot speak Kafka. The JSON
//! data is checked against the event type's schema (422 naming the field otherwise), encoded
//! to Avro with the registered schema and produced with CloudEvents headers, exactly as
//! `herald produce` and the Rust producer do.
//!
//! An `Idempotency-Key` makes a retried POST produce once: the first answer is stored and
//! returned again. The event id is also derived from the key, so even a retry that raced a
//! crash between producing and storing the answer carries the same `ce_id` — and the router
//! derives the same notification ids from it, which receivers deduplicate.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use herald_producer::{OutgoingEvent, ProduceError};
use serde::{Deserialize, Serialize};
use serde_json::Value as JsonValue;
use utoipa::ToSchema;

use super::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, Body, ErrorBody};

/// An event to produce.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IngestEvent {
    /// The event type, e.g. `order.paid`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The data, fitting the type's schema (see `/v1/event-types/{type}`).
    #[schema(value_type = Object)]
    pub data: JsonValue,
    /// The topic; `events.<domain>` (the type's first segment) when unset.
    #[serde(default)]
    pub topic: Option<String>,
    /// The record key (the entity id, keeping one entity's events in order).
    #[serde(default)]
    pub key: Option<String>,
    /// `ce_subject`.
    #[serde(default)]
    pub subject: Option<String>,
    /// `ce_tenant`: the resource owner the event concerns.
    #[serde(default)]
    pub tenant: Option<String>,
    /// `ce_recipient`: the one app a point-to-point event is for.
    #[serde(default)]
    pub recipient: Option<String>,
    /// `ce_broadcast`: a channel, or `*`, for platform announcements.
    #[serde(default)]
    pub broadcast: Option<String>,
    /// `traceparent` to continue; a new trace when unset.
    #[serde(default)]
    pub traceparent: Option<String>,
}

/// Where an ingested event landed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Ingested {
    /// Its `ce_id`.
    pub id: String,
    /// Its topic.
    pub topic: String,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// True when this answer repeats the one given for the same idempotency key.
    pub replayed: bool,
}

/// Produces one event.
#[utoipa::path(post, path = "/v1/events", tag = "events", request_body = IngestEvent,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retried request produce once")),
    responses((status = 202, body = Ingested), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn ingest_event(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    headers: HeaderMap,
    Body(input): Body<IngestEvent>,
) -> Result<(StatusCode, Json<Ingested>), ApiError> {
    caller.operator_only("produce events")?;
    if state.catalog.by_event_type(&input.event_type).is_none() {
        return Err(ApiError::invalid(
            "type",
            format!(
                "{:?} is not an event type of the catalogue",
                input.event_type
            ),
        ));
    }
    let key = headers
        .get("idempotency-key")
        .map(|v| {
            v.to_str()
                .ok()
                .filter(|k| !k.is_empty() && k.len() <= 255)
                .map(str::to_owned)
                .ok_or_else(|| {
                    ApiError::invalid(
                        "Idempotency-Key",
                        "Idempotency-Key must be 1 to 255 visible characters",
                    )
                })
        })
        .transpose()?;
    let scope = caller.actor();
    let _guard = match &key {
        Some(_) => Some(state.ingest_lock.lock().await),
        None => None,
    };
    if let Some(key) = &key {
        let (log, scope, key) = (state.log.clone(), scope.clone(), key.clone());
        let earlier = tokio::task::spawn_blocking(move || log.idempotent_answer(&scope, &key))
            .await
            .map_err(|e| ApiError::unavailable(e.to_string()))?
            .map_err(|e| ApiError::unavailable(format!("the idempotency store: {e}")))?;
        if let Some(answer) = earlier.and_then(|a| serde_json::from_str::<Ingested>(&a).ok()) {
            return Ok((
                StatusCode::ACCEPTED,
                Json(Ingested {
                    replayed: true,
                    ..answer
                }),
            ));
        }
    }
    let mut event = OutgoingEvent::new(&input.event_type, &input.data);
    event.topic = input.topic.clone();
    event.key = input.key.clone();
    event.subject = input.subject.clone();
    event.tenant = input.tenant.clone();
    event.recipient = input.recipient.clone();
    event.broadcast = input.broadcast.clone();
    event.traceparent = input.traceparent.clone();
    if let Some(key) = &key {
        let name = format!("{scope}\n{key}");
        event.id =
            Some(uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes()).to_string());
    }
    let produced = state.events.produce(event).await.map_err(|e| match e {
        ProduceError::Encode { error, .. } => {
            let field = match error.path.as_str() {
                "$" => "data".to_owned(),
                path => format!("data{}", path.trim_start_matches('$')),
            };
            ApiError::invalid(field, error.message)
        }
        ProduceError::UnknownEventType(t) => {
            ApiError::invalid("type", format!("no schema for {t:?}"))
        }
        other => ApiError::unavailable(other.to_string()),
    })?;
    let answer = Ingested {
        id: produced.id,
        topic: produced.topic,
        partition: produced.landed.partition,
        offset: produced.landed.offset,
        replayed: false,
    };
    if let Some(key) = &key {
        let text = serde_json::to_string(&answer).expect("an answer serializes");
        let (log, scope, key) = (state.log.clone(), scope.clone(), key.clone());
        tokio::task::spawn_blocking(move || log.remember_answer(&scope, &key, &text))
            .await
            .map_err(|e| ApiError::unavailable(e.to_string()))?
            .map_err(|e| ApiError::unavailable(format!("the idempotency store: {e}")))?;
    }
    state
        .audit
        .record(&caller, "ingest", "event", &answer.id, None)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(answer)))
}
