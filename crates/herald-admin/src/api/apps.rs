//! `/v1/apps`: the third-party applications (tenants of the platform), their API keys (stored
//! as Argon2 hashes, shown once) and their webhook signing secrets (stored encrypted, shown
//! once, rotated with an overlap window during which both old and new sign).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use herald_contract::RecordCodec;
use herald_core::app::App;
use herald_deliver::inbox::auth::generate_api_key;
use herald_deliver::secrets::generate_whsec;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{AppState, PageParams, page_by_id};
use crate::auth::Caller;
use crate::error::{ApiError, Body, ErrorBody, Params};

/// An API key as shown after creation: never the key itself.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiKeyOut {
    /// The key's public id (the part after `hk_`).
    pub key_id: String,
    /// When it was issued, epoch milliseconds.
    pub created_at: i64,
    /// When it was revoked.
    pub revoked_at: Option<i64>,
}

/// A signing secret as shown after creation: never the secret itself.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SecretOut {
    /// The secret's id.
    pub secret_id: String,
    /// When it was created, epoch milliseconds.
    pub created_at: i64,
    /// When it stops signing (the end of a rotation's overlap), if it does.
    pub expires_at: Option<i64>,
}

/// An app.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AppOut {
    /// Unique id.
    pub app_id: String,
    /// Human-readable name.
    pub name: String,
    /// The tenant that owns the app.
    pub owner_tenant: String,
    /// Tenants whose events the app may see; null means all.
    pub tenant_scope: Option<Vec<String>>,
    /// Its API keys.
    pub api_keys: Vec<ApiKeyOut>,
    /// Its signing secrets.
    pub signing_secrets: Vec<SecretOut>,
    /// Creation time, epoch milliseconds.
    pub created_at: i64,
    /// Last change, epoch milliseconds.
    pub updated_at: i64,
    /// Incremented on every change.
    pub version: i64,
}

impl From<&App> for AppOut {
    fn from(app: &App) -> Self {
        Self {
            app_id: app.app_id.clone(),
            name: app.name.clone(),
            owner_tenant: app.owner_tenant.clone(),
            tenant_scope: app.tenant_scope.clone(),
            api_keys: app
                .api_key_hashes
                .iter()
                .map(|k| ApiKeyOut {
                    key_id: k.key_id.clone(),
                    created_at: k.created_at,
                    revoked_at: k.revoked_at,
                })
                .collect(),
            signing_secrets: app
                .signing_secrets
                .iter()
                .map(|s| SecretOut {
                    secret_id: s.secret_id.clone(),
                    created_at: s.created_at,
                    expires_at: s.expires_at,
                })
                .collect(),
            created_at: app.created_at,
            updated_at: app.updated_at,
            version: app.version,
        }
    }
}

/// A new app.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApp {
    /// Unique id (letters, digits, `.`, `_`, `-`; at most 64); a new one when unset.
    #[serde(default)]
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    pub app_id: Option<String>,
    /// Human-readable name.
    #[schema(min_length = 1, pattern = r"\S")]
    pub name: String,
    /// The tenant that owns the app; `default` when unset.
    #[serde(default)]
    pub owner_tenant: Option<String>,
    /// Tenants whose events the app may see; all when unset.
    #[serde(default)]
    pub tenant_scope: Option<Vec<String>>,
}

/// A created app with its first API key and signing secret, shown this once.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CreatedApp {
    /// The app.
    pub app: AppOut,
    /// Its API key (`hk_…`): only its hash is stored.
    pub api_key: String,
    /// Its signing secret (`whsec_…`): stored encrypted, never shown again.
    pub signing_secret: String,
}

/// A page of apps.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AppPage {
    /// The apps, in id order.
    pub data: Vec<AppOut>,
    /// Pass as `cursor` for the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// A new API key, shown this once.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IssuedKey {
    /// Its public id.
    pub key_id: String,
    /// The key.
    pub api_key: String,
}

/// A rotation of the signing secret.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSecret {
    /// How long the current secrets keep signing beside the new one, seconds (0 to 30 days);
    /// 24 hours when unset.
    #[serde(default)]
    #[schema(maximum = 2592000)]
    pub overlap_seconds: Option<u64>,
}

/// A new signing secret, shown this once.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RotatedSecret {
    /// Its id.
    pub secret_id: String,
    /// The secret.
    pub signing_secret: String,
    /// When the previous secrets stop signing, epoch milliseconds.
    pub previous_expire_at: i64,
}

fn valid_id(field: &str, id: &str) -> Result<(), ApiError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            field,
            format!("{id:?} is not an id: use 1 to 64 letters, digits, '.', '_' or '-'"),
        ))
    }
}

/// The app `id` if the caller may see it; the same 404 otherwise.
pub(crate) fn visible_app(state: &AppState, caller: &Caller, id: &str) -> Result<App, ApiError> {
    state
        .views
        .app(id)
        .filter(|app| caller.owns(&app.app_id))
        .ok_or_else(|| ApiError::not_found("app", id))
}

async fn write_app(state: &AppState, app: &App) -> Result<(), ApiError> {
    let value = RecordCodec::builtin("dev.herald.App")
        .encode(app)
        .map_err(|e| ApiError::invalid(e.path.trim_start_matches("$."), e.message))?;
    state
        .write_and_wait(&state.names.apps(), &app.app_id, Some(&value))
        .await?;
    Ok(())
}

/// Creates an app with an API key and a signing secret (operators only).
#[utoipa::path(post, path = "/v1/apps", tag = "apps", request_body = CreateApp,
    responses((status = 201, body = CreatedApp), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_app(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Body(input): Body<CreateApp>,
) -> Result<(StatusCode, Json<CreatedApp>), ApiError> {
    caller.operator_only("create apps")?;
    let app_id = input
        .app_id
        .unwrap_or_else(|| format!("app_{}", &uuid::Uuid::new_v4().simple().to_string()[..16]));
    valid_id("app_id", &app_id)?;
    if input.name.trim().is_empty() {
        return Err(ApiError::invalid("name", "name must not be empty"));
    }
    let owner_tenant = input.owner_tenant.unwrap_or_else(|| "default".to_owned());
    if owner_tenant.trim().is_empty() {
        return Err(ApiError::invalid(
            "owner_tenant",
            "owner_tenant must not be empty",
        ));
    }
    let _guard = state.write_lock.lock().await;
    if state.views.app(&app_id).is_some() {
        return Err(ApiError::conflict(format!("app {app_id:?} exists")));
    }
    let now = herald_core::time::now_ms();
    let secret = generate_whsec();
    let (api_key, key_hash) = generate_api_key(now);
    let app = App {
        app_id: app_id.clone(),
        owner_tenant,
        tenant_scope: input.tenant_scope,
        name: input.name,
        api_key_hashes: vec![key_hash],
        signing_secrets: vec![state.config.master_key.encrypt("s1", &secret, now, None)],
        created_at: now,
        updated_at: now,
        version: 1,
    };
    write_app(&state, &app).await?;
    state
        .audit
        .record(&caller, "create", "app", &app_id, Some(1))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedApp {
            app: AppOut::from(&app),
            api_key,
            signing_secret: secret,
        }),
    ))
}

/// Lists the apps the caller may see (an app sees itself).
#[utoipa::path(get, path = "/v1/apps", tag = "apps", params(PageParams),
    responses((status = 200, body = AppPage), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list_apps(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Params(page): Params<PageParams>,
) -> Result<Json<AppPage>, ApiError> {
    let apps: Vec<App> = state
        .views
        .apps()
        .into_iter()
        .filter(|a| caller.owns(&a.app_id))
        .collect();
    let (apps, next_cursor) = page_by_id(apps, |a| &a.app_id, &page)?;
    Ok(Json(AppPage {
        data: apps.iter().map(AppOut::from).collect(),
        next_cursor,
    }))
}

/// One app.
#[utoipa::path(get, path = "/v1/apps/{app_id}", tag = "apps",
    params(("app_id" = String, Path, description = "The app id")),
    responses((status = 200, body = AppOut), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_app(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(app_id): Path<String>,
) -> Result<Json<AppOut>, ApiError> {
    Ok(Json(AppOut::from(&visible_app(&state, &caller, &app_id)?)))
}

/// Issues a new API key for the app.
#[utoipa::path(post, path = "/v1/apps/{app_id}/api-keys", tag = "apps",
    params(("app_id" = String, Path, description = "The app id")),
    responses((status = 201, body = IssuedKey), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn issue_key(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(app_id): Path<String>,
) -> Result<(StatusCode, Json<IssuedKey>), ApiError> {
    let _guard = state.write_lock.lock().await;
    let mut app = visible_app(&state, &caller, &app_id)?;
    let now = herald_core::time::now_ms();
    let (api_key, hash) = generate_api_key(now);
    let key_id = hash.key_id.clone();
    app.api_key_hashes.push(hash);
    app.version += 1;
    app.updated_at = now;
    write_app(&state, &app).await?;
    state
        .audit
        .record(&caller, "issue_key", "app", &app_id, Some(app.version))
        .await?;
    Ok((StatusCode::CREATED, Json(IssuedKey { key_id, api_key })))
}

/// Revokes one of the app's API keys; it stops working as soon as the change is read.
#[utoipa::path(delete, path = "/v1/apps/{app_id}/api-keys/{key_id}", tag = "apps",
    params(("app_id" = String, Path, description = "The app id"), ("key_id" = String, Path, description = "The key id")),
    responses((status = 200, body = AppOut), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_key(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((app_id, key_id)): Path<(String, String)>,
) -> Result<Json<AppOut>, ApiError> {
    let _guard = state.write_lock.lock().await;
    let mut app = visible_app(&state, &caller, &app_id)?;
    let now = herald_core::time::now_ms();
    let key = app
        .api_key_hashes
        .iter_mut()
        .find(|k| k.key_id == key_id && k.revoked_at.is_none())
        .ok_or_else(|| ApiError::not_found("active API key", &key_id))?;
    key.revoked_at = Some(now);
    app.version += 1;
    app.updated_at = now;
    write_app(&state, &app).await?;
    state
        .audit
        .record(&caller, "revoke_key", "app", &app_id, Some(app.version))
        .await?;
    Ok(Json(AppOut::from(&app)))
}

/// Adds a new signing secret; the current ones keep signing until the overlap ends, so
/// receivers can switch without missing a webhook.
#[utoipa::path(post, path = "/v1/apps/{app_id}/secrets/rotate", tag = "apps", request_body = RotateSecret,
    params(("app_id" = String, Path, description = "The app id")),
    responses((status = 201, body = RotatedSecret), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn rotate_secret(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(app_id): Path<String>,
    Body(input): Body<RotateSecret>,
) -> Result<(StatusCode, Json<RotatedSecret>), ApiError> {
    let overlap = input.overlap_seconds.unwrap_or(24 * 3600);
    if overlap > 30 * 24 * 3600 {
        return Err(ApiError::invalid(
            "overlap_seconds",
            "overlap_seconds must be at most 30 days (2592000)",
        ));
    }
    let _guard = state.write_lock.lock().await;
    let mut app = visible_app(&state, &caller, &app_id)?;
    let now = herald_core::time::now_ms();
    let previous_expire_at = now + overlap as i64 * 1000;
    // Secrets already expired stay out; the others end with the overlap.
    app.signing_secrets.retain(|s| s.is_active(now));
    for old in &mut app.signing_secrets {
        old.expires_at = Some(
            old.expires_at
                .map_or(previous_expire_at, |at| at.min(previous_expire_at)),
        );
    }
    let secret_id = format!("s{}", app.version + 1);
    let secret = generate_whsec();
    app.signing_secrets.push(
        state
            .config
            .master_key
            .encrypt(&secret_id, &secret, now, None),
    );
    app.version += 1;
    app.updated_at = now;
    write_app(&state, &app).await?;
    state
        .audit
        .record(&caller, "rotate_secret", "app", &app_id, Some(app.version))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(RotatedSecret {
            secret_id,
            signing_secret: secret,
            previous_expire_at,
        }),
    ))
}
