//! `/v1/event-types`: the event catalogue from `schemas/`: each type with its Avro schema,
//! the same schema as JSON Schema (what `POST /v1/events` accepts as `data`) and an example.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use herald_contract::catalog::CatalogSchema;
use herald_contract::json_schema;
use serde::Serialize;
use serde_json::Value as JsonValue;
use utoipa::ToSchema;

use super::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};

/// One event type.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventType {
    /// The type, e.g. `order.paid`.
    pub event_type: String,
    /// The Avro record's full name.
    pub schema_name: String,
    /// The record's documentation.
    pub description: Option<String>,
    /// The Avro schema as registered.
    #[schema(value_type = Object)]
    pub avro_schema: JsonValue,
    /// The data as JSON Schema (draft 2020-12).
    #[schema(value_type = Object)]
    pub json_schema: JsonValue,
    /// An example of the data that fits the schema.
    #[schema(value_type = Object)]
    pub example: JsonValue,
}

/// Herald's own records (`dev.herald.*`: apps, subscriptions, notifications, attempts) share
/// the catalogue folder but are not events anyone subscribes to.
fn is_event(schema: &CatalogSchema) -> bool {
    !schema.full_name.starts_with("dev.herald.")
}

fn describe(schema: &CatalogSchema) -> EventType {
    let avro: JsonValue = serde_json::from_str(&schema.text).unwrap_or(JsonValue::Null);
    EventType {
        event_type: schema.event_type.clone(),
        schema_name: schema.full_name.clone(),
        description: avro.get("doc").and_then(|d| d.as_str()).map(str::to_owned),
        avro_schema: avro,
        json_schema: json_schema::to_json_schema(&schema.entry),
        example: json_schema::example(&schema.entry),
    }
}

/// Every event type, in type order.
#[utoipa::path(get, path = "/v1/event-types", tag = "event-types",
    responses((status = 200, body = Vec<EventType>), (status = 401, body = ErrorBody)))]
pub async fn list_event_types(
    State(state): State<Arc<AppState>>,
    _caller: Caller,
) -> Json<Vec<EventType>> {
    let mut types: Vec<EventType> = state
        .catalog
        .schemas()
        .iter()
        .filter(|s| is_event(s))
        .map(describe)
        .collect();
    types.sort_by(|a, b| a.event_type.cmp(&b.event_type));
    Json(types)
}

/// One event type.
#[utoipa::path(get, path = "/v1/event-types/{event_type}", tag = "event-types",
    params(("event_type" = String, Path, description = "The event type, e.g. order.paid")),
    responses((status = 200, body = EventType), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_event_type(
    State(state): State<Arc<AppState>>,
    _caller: Caller,
    Path(event_type): Path<String>,
) -> Result<Json<EventType>, ApiError> {
    state
        .catalog
        .by_event_type(&event_type)
        .filter(|s| is_event(s))
        .map(|s| Json(describe(s)))
        .ok_or_else(|| ApiError::not_found("event type", &event_type))
}
