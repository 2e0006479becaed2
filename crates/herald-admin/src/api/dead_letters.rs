//! `/v1/dead-letters/{channel}`: a channel's dead letters (notifications that failed for
//! good), inspected one by one and redriven one, all, or a filtered set. An app sees only its
//! own notifications; records that are not notifications at all are shown to operators only.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use herald_core::Notification;
use herald_core::topics::ChannelName;
use herald_deliver::redrive::{self, DeadLetter, Selection};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{AppState, parse_time};
use crate::auth::Caller;
use crate::error::{ApiError, Body, ErrorBody, Params};

/// One dead letter.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeadLetterOut {
    /// Its partition in the dead-letter topic.
    pub partition: i32,
    /// Its offset there.
    pub offset: i64,
    /// Why: `exhausted`, `permanent`, `gone`, `subscription_disabled`, `undecodable`, …
    pub kind: String,
    /// The last error.
    pub error: String,
    /// Attempts made.
    pub attempts: Option<i32>,
    /// When it was dead-lettered, epoch milliseconds.
    pub failed_at: Option<i64>,
    /// The notification, when the record is one.
    pub notification: Option<Notification>,
}

impl From<DeadLetter> for DeadLetterOut {
    fn from(l: DeadLetter) -> Self {
        Self {
            partition: l.partition,
            offset: l.offset,
            kind: l.kind,
            error: l.error,
            attempts: l.attempts,
            failed_at: l.failed_at,
            notification: l.notification,
        }
    }
}

/// Which dead letters to list.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeadLetterFilter {
    /// Only this kind.
    pub kind: Option<String>,
    /// Only this subscription's.
    pub subscription_id: Option<String>,
    /// Only those dead-lettered at or after this RFC 3339 time.
    pub since: Option<String>,
    /// Where to continue: the `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1 to 1,000; 100 when unset.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

/// A page of dead letters.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeadLetterPage {
    /// The dead letters, oldest first.
    pub data: Vec<DeadLetterOut>,
    /// Pass as `cursor` for the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// Which dead letters to redrive; every given condition must hold, none given means all.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedriveRequest {
    /// Only this notification.
    #[serde(default)]
    pub notification_id: Option<String>,
    /// Only this kind.
    #[serde(default)]
    pub kind: Option<String>,
    /// Only this subscription's.
    #[serde(default)]
    pub subscription_id: Option<String>,
    /// Only those dead-lettered at or after this RFC 3339 time.
    #[serde(default)]
    pub since: Option<String>,
}

/// What a redrive did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Redriven {
    /// How many notifications went back to the channel's topic.
    pub redriven: usize,
}

fn channel(name: &str) -> Result<ChannelName, ApiError> {
    if !herald_core::subscription::KNOWN_CHANNELS.contains(&name) {
        return Err(ApiError::not_found("channel", name));
    }
    ChannelName::parse(name).map_err(|e| ApiError::invalid("channel", e.to_string()))
}

fn visible_to(caller: &Caller, letter: &DeadLetter) -> bool {
    match caller.app() {
        None => true,
        Some(own) => letter
            .notification
            .as_ref()
            .is_some_and(|n| n.app_id == own),
    }
}

async fn letters(
    state: &AppState,
    channel: &ChannelName,
    caller: &Caller,
) -> Result<Vec<DeadLetter>, ApiError> {
    let (kafka, names, channel) = (
        state.config.kafka.clone(),
        state.names.clone(),
        channel.clone(),
    );
    let all = match tokio::task::spawn_blocking(move || redrive::list(&kafka, &names, &channel))
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?
    {
        Ok(all) => all,
        // Nothing was ever dead-lettered on this channel.
        Err(e) if e.is_unknown_topic() => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    Ok(all.into_iter().filter(|l| visible_to(caller, l)).collect())
}

/// Lists a channel's dead letters.
#[utoipa::path(get, path = "/v1/dead-letters/{channel}", tag = "dead-letters",
    params(("channel" = String, Path, description = "The channel, e.g. webhook"), DeadLetterFilter),
    responses((status = 200, body = DeadLetterPage), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list_dead_letters(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(name): Path<String>,
    Params(filter): Params<DeadLetterFilter>,
) -> Result<Json<DeadLetterPage>, ApiError> {
    let channel = channel(&name)?;
    let limit = super::PageParams {
        cursor: None,
        limit: filter.limit,
    }
    .limit()?;
    let skip = filter
        .cursor
        .as_deref()
        .map(|c| {
            c.parse::<usize>()
                .map_err(|_| ApiError::invalid("cursor", "cursor is the next_cursor of a page"))
        })
        .transpose()?
        .unwrap_or(0);
    let selection = Selection {
        notification_id: None,
        kind: filter.kind,
        subscription_id: filter.subscription_id,
        since_ms: parse_time("since", filter.since.as_deref())?,
    };
    let selected: Vec<DeadLetter> = letters(&state, &channel, &caller)
        .await?
        .into_iter()
        .filter(|l| selection.matches(l))
        .collect();
    let total = selected.len();
    let data: Vec<DeadLetterOut> = selected
        .into_iter()
        .skip(skip)
        .take(limit)
        .map(DeadLetterOut::from)
        .collect();
    let next_cursor = (skip + data.len() < total).then(|| (skip + data.len()).to_string());
    Ok(Json(DeadLetterPage { data, next_cursor }))
}

/// The latest dead letter of one notification.
#[utoipa::path(get, path = "/v1/dead-letters/{channel}/{notification_id}", tag = "dead-letters",
    params(("channel" = String, Path, description = "The channel"), ("notification_id" = String, Path, description = "The notification id")),
    responses((status = 200, body = DeadLetterOut), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_dead_letter(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((name, id)): Path<(String, String)>,
) -> Result<Json<DeadLetterOut>, ApiError> {
    let channel = channel(&name)?;
    letters(&state, &channel, &caller)
        .await?
        .into_iter()
        .rev()
        .find(|l| {
            l.notification
                .as_ref()
                .is_some_and(|n| n.notification_id == id)
        })
        .map(|l| Json(DeadLetterOut::from(l)))
        .ok_or_else(|| ApiError::not_found("dead letter", &id))
}

/// Writes the selected dead letters back to the channel's topic (attempts reset, ids kept,
/// so receivers can still deduplicate).
#[utoipa::path(post, path = "/v1/dead-letters/{channel}/redrive", tag = "dead-letters", request_body = RedriveRequest,
    params(("channel" = String, Path, description = "The channel")),
    responses((status = 200, body = Redriven), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn redrive_dead_letters(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(name): Path<String>,
    Body(input): Body<RedriveRequest>,
) -> Result<Json<Redriven>, ApiError> {
    let channel = channel(&name)?;
    let selection = Selection {
        notification_id: input.notification_id.clone(),
        kind: input.kind,
        subscription_id: input.subscription_id,
        since_ms: parse_time("since", input.since.as_deref())?,
    };
    let who = caller.clone();
    let redriven = redrive::redrive(&state.config.kafka, &state.names, &channel, move |l| {
        visible_to(&who, l) && selection.matches(l)
    })
    .await
    .or_else(|e| if e.is_unknown_topic() { Ok(0) } else { Err(e) })?;
    let what = input.notification_id.unwrap_or_else(|| format!("{name}:*"));
    state
        .audit
        .record(&caller, "redrive", "dead_letter", &what, None)
        .await?;
    Ok(Json(Redriven { redriven }))
}
