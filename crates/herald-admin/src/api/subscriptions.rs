//! `/v1/subscriptions`: create, read, replace, delete, enable and disable subscriptions, and
//! send a test delivery. A subscription is checked exactly as the router compiles it, so a
//! bad filter or template is refused here with the field at fault, never at routing time.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use herald_contract::RecordCodec;
use herald_core::Notification;
use herald_core::Subscription;
use herald_core::attempt::{AttemptStatus, DeliveryAttempt};
use herald_core::notification::notification_id;
use herald_core::retry::AttemptOutcome;
use herald_core::subscription::{Destination, DigestWindow, Ordering, TransformSpec};
use herald_core::transform::Transform;
use herald_deliver::channels::{AttemptContext, Channel};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json_;
use utoipa::ToSchema;

use super::{AppState, PageParams, page_by_id};
use crate::auth::Caller;
use crate::error::{ApiError, Body, ErrorBody, Params};

/// A subscription as written by a client; Herald sets the times and the version.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionInput {
    /// Unique id; a new one when unset (on create), the path's id when unset (on replace).
    #[serde(default)]
    pub subscription_id: Option<String>,
    /// The owning app; an app key may only name its own app (and may leave it out).
    #[serde(default)]
    pub app_id: Option<String>,
    /// Event-type patterns: `order.paid`, `order.*` or `*`.
    pub event_types: Vec<String>,
    /// Tenants whose events match; all when unset.
    #[serde(default)]
    pub tenant_scope: Option<Vec<String>>,
    /// A CEL expression over `event` and `data` that must hold.
    #[serde(default)]
    pub filter: Option<String>,
    /// webhook, email, sms, wechat, feishu, dingtalk, wecom, slack, http or inbox.
    pub channel: String,
    /// Where to deliver.
    pub destination: Destination,
    /// How to shape the payload.
    #[serde(default)]
    pub transform: Option<TransformSpec>,
    /// Delays before each retry, milliseconds.
    #[serde(default)]
    pub retry_schedule_ms: Option<Vec<i64>>,
    /// `NONE` or `PER_KEY`.
    #[serde(default)]
    pub ordering: Ordering,
    /// Batching window for digest deliveries.
    #[serde(default)]
    pub digest: Option<DigestWindow>,
    /// Whether it matches events; true when unset.
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// A page of subscriptions.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SubscriptionPage {
    /// The subscriptions, in id order.
    pub data: Vec<Subscription>,
    /// Pass as `cursor` for the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// Which subscriptions to list.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SubscriptionFilter {
    /// Only this app's (operators; an app sees only its own anyway).
    pub app_id: Option<String>,
    /// Where to continue: the `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1 to 1,000; 100 when unset.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

/// A test delivery's event.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestSend {
    /// The event type; the subscription's first exact type, else the catalogue's first
    /// matching one, when unset.
    #[serde(default)]
    pub event_type: Option<String>,
    /// The event's data; the catalogue's example for the type when unset.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub data: Option<Json_>,
}

/// What the receiver answered to a test delivery.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TestResult {
    /// `delivered`, `retryable`, `permanent` or `gone`: how a real delivery would be treated.
    pub outcome: String,
    /// Why it failed, when it did.
    pub error: Option<String>,
    /// The receiver's status code, if it answered.
    pub response_code: Option<i32>,
    /// The start of its answer.
    pub response_body: Option<String>,
    /// How long it took, milliseconds.
    pub latency_ms: i64,
    /// The test notification's id (the `webhook-id` the receiver saw).
    pub notification_id: String,
}

fn visible(state: &AppState, caller: &Caller, id: &str) -> Result<Subscription, ApiError> {
    state
        .views
        .subscription(id)
        .filter(|s| caller.owns(&s.app_id))
        .ok_or_else(|| ApiError::not_found("subscription", id))
}

/// Checks the owning app against the caller and the apps that exist.
fn owner(state: &AppState, caller: &Caller, asked: Option<String>) -> Result<String, ApiError> {
    let app_id = match (caller.app(), asked) {
        (Some(own), None) => own.to_owned(),
        (Some(own), Some(asked)) if asked == own => asked,
        (Some(_), Some(_)) => {
            return Err(ApiError::forbidden(
                "an app key may only manage its own app's subscriptions",
            ));
        }
        (None, Some(asked)) => asked,
        (None, None) => {
            return Err(ApiError::invalid(
                "app_id",
                "app_id is required: name the app that owns the subscription",
            ));
        }
    };
    if state.views.app(&app_id).is_none() {
        return Err(ApiError::invalid("app_id", format!("no app {app_id:?}")));
    }
    Ok(app_id)
}

fn build(input: SubscriptionInput, id: String, app_id: String, now: i64) -> Subscription {
    Subscription {
        subscription_id: id,
        app_id,
        event_types: input.event_types,
        tenant_scope: input.tenant_scope,
        filter: input.filter,
        channel: input.channel,
        destination: input.destination,
        transform: input.transform,
        retry_schedule_ms: input.retry_schedule_ms,
        ordering: input.ordering,
        digest: input.digest,
        enabled: input.enabled.unwrap_or(true),
        created_at: now,
        updated_at: now,
        version: 1,
    }
}

/// Checks a subscription as the router will, then writes it and waits to read it back.
async fn save(
    state: &AppState,
    caller: &Caller,
    sub: &Subscription,
    action: &str,
) -> Result<(), ApiError> {
    sub.clone()
        .compile()
        .map_err(|e| ApiError::invalid(e.field(), e.to_string()))?;
    let value = RecordCodec::subscription()
        .encode(sub)
        .map_err(|e| ApiError::invalid(e.path.trim_start_matches("$."), e.message))?;
    state
        .write_and_wait(
            &state.names.subscriptions(),
            &sub.subscription_id,
            Some(&value),
        )
        .await?;
    state
        .audit
        .record(
            caller,
            action,
            "subscription",
            &sub.subscription_id,
            Some(sub.version),
        )
        .await?;
    Ok(())
}

/// Creates a subscription.
#[utoipa::path(post, path = "/v1/subscriptions", tag = "subscriptions", request_body = SubscriptionInput,
    responses((status = 201, body = Subscription), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_subscription(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Body(mut input): Body<SubscriptionInput>,
) -> Result<(StatusCode, Json<Subscription>), ApiError> {
    let app_id = owner(&state, &caller, input.app_id.take())?;
    let id = input
        .subscription_id
        .take()
        .unwrap_or_else(|| format!("sub_{}", uuid::Uuid::new_v4().simple()));
    let _guard = state.write_lock.lock().await;
    if state.views.subscription(&id).is_some() {
        return Err(ApiError::conflict(format!("subscription {id:?} exists")));
    }
    let sub = build(input, id, app_id, herald_core::time::now_ms());
    save(&state, &caller, &sub, "create").await?;
    Ok((StatusCode::CREATED, Json(sub)))
}

/// Lists the subscriptions the caller may see.
#[utoipa::path(get, path = "/v1/subscriptions", tag = "subscriptions", params(SubscriptionFilter),
    responses((status = 200, body = SubscriptionPage), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list_subscriptions(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Params(filter): Params<SubscriptionFilter>,
) -> Result<Json<SubscriptionPage>, ApiError> {
    if let Some(asked) = &filter.app_id
        && !caller.owns(asked)
    {
        return Err(ApiError::forbidden(
            "an app key sees only its own app's subscriptions",
        ));
    }
    let subs = state.views.subscriptions(|s| {
        caller.owns(&s.app_id) && filter.app_id.as_ref().is_none_or(|a| a == &s.app_id)
    });
    let page = PageParams {
        cursor: filter.cursor,
        limit: filter.limit,
    };
    let (data, next_cursor) = page_by_id(subs, |s| &s.subscription_id, &page)?;
    Ok(Json(SubscriptionPage { data, next_cursor }))
}

/// One subscription.
#[utoipa::path(get, path = "/v1/subscriptions/{subscription_id}", tag = "subscriptions",
    params(("subscription_id" = String, Path, description = "The subscription id")),
    responses((status = 200, body = Subscription), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_subscription(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Subscription>, ApiError> {
    Ok(Json(visible(&state, &caller, &id)?))
}

/// Replaces a subscription (its version goes up).
#[utoipa::path(put, path = "/v1/subscriptions/{subscription_id}", tag = "subscriptions", request_body = SubscriptionInput,
    params(("subscription_id" = String, Path, description = "The subscription id")),
    responses((status = 200, body = Subscription), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn replace_subscription(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    Body(mut input): Body<SubscriptionInput>,
) -> Result<Json<Subscription>, ApiError> {
    if input
        .subscription_id
        .as_ref()
        .is_some_and(|given| given != &id)
    {
        return Err(ApiError::invalid(
            "subscription_id",
            "subscription_id differs from the id in the path",
        ));
    }
    let _guard = state.write_lock.lock().await;
    let current = visible(&state, &caller, &id)?;
    let app_id = owner(
        &state,
        &caller,
        input.app_id.take().or(Some(current.app_id.clone())),
    )?;
    let now = herald_core::time::now_ms();
    let mut sub = build(input, id, app_id, now);
    sub.created_at = current.created_at;
    sub.version = current.version + 1;
    save(&state, &caller, &sub, "update").await?;
    Ok(Json(sub))
}

/// Deletes a subscription; its notifications already routed are still delivered.
#[utoipa::path(delete, path = "/v1/subscriptions/{subscription_id}", tag = "subscriptions",
    params(("subscription_id" = String, Path, description = "The subscription id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_subscription(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let _guard = state.write_lock.lock().await;
    let current = visible(&state, &caller, &id)?;
    state
        .write_and_wait(&state.names.subscriptions(), &id, None)
        .await?;
    state
        .audit
        .record(
            &caller,
            "delete",
            "subscription",
            &id,
            Some(current.version),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_enabled(
    state: &AppState,
    caller: &Caller,
    id: &str,
    enabled: bool,
) -> Result<Json<Subscription>, ApiError> {
    let _guard = state.write_lock.lock().await;
    let mut sub = visible(state, caller, id)?;
    if sub.enabled != enabled {
        sub.enabled = enabled;
        sub.version += 1;
        sub.updated_at = herald_core::time::now_ms();
        save(
            state,
            caller,
            &sub,
            if enabled { "enable" } else { "disable" },
        )
        .await?;
    }
    Ok(Json(sub))
}

/// Enables a subscription.
#[utoipa::path(post, path = "/v1/subscriptions/{subscription_id}/enable", tag = "subscriptions",
    params(("subscription_id" = String, Path, description = "The subscription id")),
    responses((status = 200, body = Subscription), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn enable_subscription(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Subscription>, ApiError> {
    set_enabled(&state, &caller, &id, true).await
}

/// Disables a subscription: it matches no event until enabled again.
#[utoipa::path(post, path = "/v1/subscriptions/{subscription_id}/disable", tag = "subscriptions",
    params(("subscription_id" = String, Path, description = "The subscription id")),
    responses((status = 200, body = Subscription), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn disable_subscription(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Subscription>, ApiError> {
    set_enabled(&state, &caller, &id, false).await
}

/// Delivers a sample event to the subscription's webhook now, signed with the app's secrets,
/// and returns the receiver's answer. The attempt is recorded in the delivery log.
#[utoipa::path(post, path = "/v1/subscriptions/{subscription_id}/test", tag = "subscriptions", request_body = TestSend,
    params(("subscription_id" = String, Path, description = "The subscription id")),
    responses((status = 200, body = TestResult), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn test_send(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    Body(input): Body<TestSend>,
) -> Result<Json<TestResult>, ApiError> {
    let sub = visible(&state, &caller, &id)?;
    if sub.channel != "webhook" {
        return Err(ApiError::invalid(
            "channel",
            format!(
                "test sends go to webhook subscriptions; this one delivers by {}",
                sub.channel
            ),
        ));
    }
    let event_type = match input.event_type {
        Some(t) => t,
        None => sub
            .event_types
            .iter()
            .find(|t| !t.contains('*'))
            .cloned()
            .or_else(|| {
                state
                    .catalog
                    .schemas()
                    .iter()
                    .map(|s| s.event_type.clone())
                    .find(|t| {
                        sub.event_types.iter().any(|p| {
                            herald_core::subscription::EventTypePattern::parse(p)
                                .is_ok_and(|p| p.matches(t))
                        })
                    })
            })
            .ok_or_else(|| {
                ApiError::invalid(
                    "event_type",
                    "name the event type to send: no catalogued type matches the subscription",
                )
            })?,
    };
    let data = match input.data {
        Some(data) => data,
        None => state
            .catalog
            .by_event_type(&event_type)
            .map(|s| herald_contract::json_schema::example(&s.entry))
            .ok_or_else(|| {
                ApiError::invalid("data", format!("no example for {event_type:?}: send data"))
            })?,
    };
    let event_id = format!("test_{}", uuid::Uuid::new_v4().simple());
    let now = herald_core::time::now_ms();
    let envelope = serde_json::json!({
        "id": event_id,
        "type": event_type,
        "source": "herald-admin/test",
        "time": chrono::DateTime::from_timestamp_millis(now)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        "data": data,
    });
    let payload = Transform::compile(sub.transform.as_ref())
        .and_then(|t| t.render(&envelope))
        .map_err(|e| ApiError::invalid("transform", e.to_string()))?;
    let notification = Notification {
        notification_id: notification_id(&event_id, &sub.subscription_id),
        event_id,
        event_type,
        event_source: "herald-admin/test".to_owned(),
        event_time: now,
        subscription_id: sub.subscription_id.clone(),
        app_id: sub.app_id.clone(),
        channel: sub.channel.clone(),
        destination: sub.destination.address.clone(),
        ordering_key: None,
        payload: payload.body,
        content_type: payload.content_type.to_owned(),
        attempt: 0,
        created_at: now,
        traceparent: Some(herald_producer::new_traceparent()),
    };
    let view = state.views.delivery().subscription(&id);
    let report = tokio::time::timeout(
        super::TEST_SEND_TIMEOUT,
        state.webhook.attempt(
            &notification,
            AttemptContext {
                subscription: view.as_ref(),
                attempt: 1,
            },
        ),
    )
    .await
    .map_err(|_| ApiError::timeout("the receiver did not answer in time"))?;
    let (outcome, error, status) = match &report.outcome {
        AttemptOutcome::Delivered => ("delivered", None, AttemptStatus::Succeeded),
        AttemptOutcome::Retryable { reason, .. } => (
            "retryable",
            Some(reason.clone()),
            AttemptStatus::DeadLettered,
        ),
        AttemptOutcome::Permanent { reason } => (
            "permanent",
            Some(reason.clone()),
            AttemptStatus::DeadLettered,
        ),
        AttemptOutcome::Gone { reason } => {
            ("gone", Some(reason.clone()), AttemptStatus::DeadLettered)
        }
    };
    // A test send is a delivery attempt like any other: it shows in the delivery log. It is
    // never retried, so a failure is recorded as final.
    let attempt = DeliveryAttempt {
        attempt_id: DeliveryAttempt::id_for(&notification.notification_id, 1),
        notification_id: notification.notification_id.clone(),
        subscription_id: sub.subscription_id.clone(),
        app_id: sub.app_id.clone(),
        channel: sub.channel.clone(),
        attempt: 1,
        status,
        started_at: now,
        latency_ms: report.latency.as_millis() as i64,
        response_code: report.response_code,
        response_body: report.response_body.clone(),
        error: error.clone().map(|e| format!("test send: {e}")),
        next_attempt_at: None,
    };
    let value = RecordCodec::builtin("dev.herald.DeliveryAttempt")
        .encode(&attempt)
        .map_err(|e| ApiError::unavailable(format!("encoding the attempt: {e}")))?;
    state
        .producer
        .send(
            &state.names.attempts(),
            Some(attempt.notification_id.as_bytes()),
            Some(&value),
            &[],
        )
        .await?;
    Ok(Json(TestResult {
        outcome: outcome.to_owned(),
        error,
        response_code: report.response_code,
        response_body: report.response_body,
        latency_ms: report.latency.as_millis() as i64,
        notification_id: notification.notification_id,
    }))
}
