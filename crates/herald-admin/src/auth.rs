//! Who is calling: a platform operator (the operator token) sees and changes everything; an
//! app (its API key, `hk_…`) sees and changes only what is its own. Credentials come as
//! `Authorization: Bearer <token>`, or from the console's `herald_session` cookie.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};

use crate::api::AppState;
use crate::error::ApiError;

/// The name of the console's session cookie (it holds the credential itself, HttpOnly).
pub const SESSION_COOKIE: &str = "herald_session";

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A platform operator.
    Operator,
    /// An app, by id.
    App(String),
}

impl Caller {
    /// Refuses anyone but an operator.
    pub fn operator_only(&self, what: &str) -> Result<(), ApiError> {
        match self {
            Self::Operator => Ok(()),
            Self::App(_) => Err(ApiError::forbidden(format!(
                "only a platform operator may {what}"
            ))),
        }
    }

    /// Whether the caller may see and change what belongs to `app_id`.
    pub fn owns(&self, app_id: &str) -> bool {
        match self {
            Self::Operator => true,
            Self::App(own) => own == app_id,
        }
    }

    /// The app the caller is restricted to, if any.
    pub fn app(&self) -> Option<&str> {
        match self {
            Self::Operator => None,
            Self::App(own) => Some(own),
        }
    }

    /// Who made a change, for the audit trail.
    pub fn actor(&self) -> String {
        match self {
            Self::Operator => "operator".to_owned(),
            Self::App(id) => format!("app:{id}"),
        }
    }
}

/// The operator token as stored: its SHA-256, compared digest to digest so the comparison
/// does not reveal how much of a guess was right.
#[derive(Clone)]
pub struct OperatorToken([u8; 32]);

impl OperatorToken {
    /// Keeps the digest of `token`.
    pub fn new(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    fn matches(&self, candidate: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(candidate.as_bytes()).into();
        digest
            .iter()
            .zip(self.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

/// The credential of a request: the bearer token, else the session cookie.
pub fn credential(parts: &Parts) -> Option<String> {
    let headers = &parts.headers;
    if let Some(value) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        return value
            .strip_prefix("Bearer ")
            .map(|token| token.trim().to_owned());
    }
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// Resolves a credential to a caller.
pub fn caller_of(state: &AppState, credential: &str) -> Option<Caller> {
    if state.operator.matches(credential) {
        return Some(Caller::Operator);
    }
    state.views.keys().app_of(credential).map(Caller::App)
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        let credential = credential(parts).ok_or_else(ApiError::unauthorized)?;
        let state = state.clone();
        // Argon2 verification takes tens of milliseconds: off the async workers.
        tokio::task::spawn_blocking(move || caller_of(&state, &credential))
            .await
            .ok()
            .flatten()
            .ok_or_else(ApiError::unauthorized)
    }
}
