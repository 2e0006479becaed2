//! `/v1/deliveries`: the delivery log, every attempt of every notification, newest first,
//! filtered by app, subscription, notification, status and time, paged by cursor.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use herald_core::attempt::{AttemptStatus, DeliveryAttempt};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{AppState, parse_time};
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody, Params};
use crate::log::LogQuery;

/// Which attempts to list.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryFilter {
    /// Only this app's (an app key sees only its own anyway).
    pub app_id: Option<String>,
    /// Only this subscription's.
    pub subscription_id: Option<String>,
    /// Only this notification's.
    pub notification_id: Option<String>,
    /// Only attempts with this outcome.
    pub status: Option<AttemptStatus>,
    /// Only attempts started at or after this RFC 3339 time.
    pub since: Option<String>,
    /// Only attempts started before this RFC 3339 time.
    pub until: Option<String>,
    /// Where to continue: the `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1 to 1,000; 100 when unset.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

/// A page of attempts.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeliveryPage {
    /// The attempts, newest first.
    pub data: Vec<DeliveryAttempt>,
    /// Pass as `cursor` for the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// Lists delivery attempts.
#[utoipa::path(get, path = "/v1/deliveries", tag = "deliveries", params(DeliveryFilter),
    responses((status = 200, body = DeliveryPage), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list_deliveries(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Params(filter): Params<DeliveryFilter>,
) -> Result<Json<DeliveryPage>, ApiError> {
    let app_id = match (caller.app(), filter.app_id) {
        (Some(own), Some(asked)) if asked != own => {
            return Err(ApiError::forbidden(
                "an app key sees only its own app's deliveries",
            ));
        }
        (Some(own), _) => Some(own.to_owned()),
        (None, asked) => asked,
    };
    let limit = super::PageParams {
        cursor: None,
        limit: filter.limit,
    }
    .limit()?;
    let cursor = filter
        .cursor
        .as_deref()
        .map(|c| {
            c.parse::<i64>()
                .map_err(|_| ApiError::invalid("cursor", "cursor is the next_cursor of a page"))
        })
        .transpose()?;
    let query = LogQuery {
        app_id,
        subscription_id: filter.subscription_id,
        notification_id: filter.notification_id,
        status: filter.status,
        since_ms: parse_time("since", filter.since.as_deref())?,
        until_ms: parse_time("until", filter.until.as_deref())?,
        cursor,
        limit,
    };
    let log = state.log.clone();
    let (data, next) = tokio::task::spawn_blocking(move || log.query(&query))
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?
        .map_err(|e| ApiError::unavailable(format!("the delivery log: {e}")))?;
    Ok(Json(DeliveryPage {
        data,
        next_cursor: next.map(|n| n.to_string()),
    }))
}
