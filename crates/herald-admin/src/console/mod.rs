//! The console: a web UI for developers (signed in with their app key) and operators (with
//! the operator token), served by `herald admin` at `/console`. One page and one script, both
//! compiled into the binary, calling the same API as everyone else; the session is an
//! HttpOnly, SameSite=Strict cookie holding the credential, and every API write needs a JSON
//! body, which a cross-site form cannot send.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, SET_COOKIE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;

use crate::api::AppState;
use crate::auth::{Caller, SESSION_COOKIE, caller_of};
use crate::error::{ApiError, Body};

const PAGE: &str = include_str!("index.html");
const SCRIPT: &str = include_str!("console.js");

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    key: String,
}

fn static_file(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

fn cookie(value: &str, max_age: u64) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("herald_session=; Path=/; Max-Age=0"))
}

async fn sign_in(
    State(state): State<Arc<AppState>>,
    Body(input): Body<SignIn>,
) -> Result<Response, ApiError> {
    let key = input.key.trim().to_owned();
    if key.is_empty() || key.contains([';', ' ', ',']) {
        return Err(ApiError::invalid(
            "key",
            "paste an app API key or the operator token",
        ));
    }
    let checked = state.clone();
    let probe = key.clone();
    let caller = tokio::task::spawn_blocking(move || caller_of(&checked, &probe))
        .await
        .ok()
        .flatten()
        .ok_or_else(|| ApiError::invalid("key", "this key is not known (or was revoked)"))?;
    let mut response = Json(describe(&caller)).into_response();
    response
        .headers_mut()
        .insert(SET_COOKIE, cookie(&key, 12 * 3600));
    Ok(response)
}

fn describe(caller: &Caller) -> serde_json::Value {
    match caller {
        Caller::Operator => json!({"caller": "operator", "app_id": null}),
        Caller::App(id) => json!({"caller": "app", "app_id": id}),
    }
}

async fn session(caller: Caller) -> Json<serde_json::Value> {
    Json(describe(&caller))
}

async fn sign_out() -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(SET_COOKIE, cookie("", 0));
    response
}

/// The console's routes: the page, its script and the session.
pub fn routes(state: Arc<AppState>) -> axum::Router {
    axum::Router::new()
        .route("/", get(|| async { Redirect::to("/console") }))
        .route(
            "/console",
            get(|| async { static_file(PAGE, "text/html; charset=utf-8") }),
        )
        .route(
            "/console/console.js",
            get(|| async { static_file(SCRIPT, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/console/session",
            get(session).post(sign_in).delete(sign_out),
        )
        .with_state(state)
}
