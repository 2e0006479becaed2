//! What a delivery service knows besides the notifications: the subscriptions (for their
//! enabled flag, headers and retry schedule) and the apps' signing secrets, both loaded from
//! their compacted topics before delivery starts and kept current while it runs.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use herald_contract::RecordCodec;
use herald_core::Subscription;
use herald_core::app::App;
use herald_kafka::ReadRecord;

use crate::secrets::MasterKey;

/// A decrypted signing secret; its `Debug` never shows the secret.
#[derive(Clone)]
pub struct SigningSecret {
    /// The secret's id.
    pub secret_id: String,
    /// `whsec_…` (HMAC-SHA256, `v1`) or `whsk_…` (ed25519, `v1a`).
    pub value: String,
    /// When it stops signing, epoch milliseconds.
    pub expires_at: Option<i64>,
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningSecret({}, <redacted>)", self.secret_id)
    }
}

/// A subscription with its app's signing secrets, as an attempt needs it.
#[derive(Debug, Clone)]
pub struct SubscriptionView {
    /// The subscription.
    pub spec: Arc<Subscription>,
    /// Its app's secrets that sign now.
    pub secrets: Arc<Vec<SigningSecret>>,
}

/// The live subscriptions and secrets.
#[derive(Default)]
pub struct DeliveryState {
    subscriptions: RwLock<HashMap<String, Arc<Subscription>>>,
    secrets: RwLock<HashMap<String, Arc<Vec<SigningSecret>>>>,
}

fn key_of(record: &ReadRecord) -> String {
    record
        .key
        .as_deref()
        .map(String::from_utf8_lossy)
        .unwrap_or_default()
        .into_owned()
}

impl DeliveryState {
    /// The subscription `id` with its app's secrets, if it exists.
    pub fn subscription(&self, id: &str) -> Option<SubscriptionView> {
        let spec = self
            .subscriptions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)?
            .clone();
        let secrets = self
            .secrets
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&spec.app_id)
            .cloned()
            .unwrap_or_default();
        Some(SubscriptionView { spec, secrets })
    }

    /// Applies one record of `herald.subscriptions`. A record that does not decode removes
    /// the subscription, so nothing is delivered on stale rules.
    pub fn apply_subscription(&self, codec: &RecordCodec, record: &ReadRecord) {
        let key = key_of(record);
        let mut all = self
            .subscriptions
            .write()
            .unwrap_or_else(|e| e.into_inner());
        match record
            .value
            .as_deref()
            .map(|v| codec.decode::<Subscription>(v))
        {
            None => {
                all.remove(&key);
            }
            Some(Ok(subscription)) => {
                all.insert(key, Arc::new(subscription));
            }
            Some(Err(error)) => {
                tracing::error!(%error, key, "subscription record refused; the subscription is removed");
                all.remove(&key);
            }
        }
    }

    /// Applies one record of `herald.apps`: decrypts its signing secrets with `key`.
    pub fn apply_app(&self, codec: &RecordCodec, key: Option<&MasterKey>, record: &ReadRecord) {
        let app_id = key_of(record);
        let mut all = self.secrets.write().unwrap_or_else(|e| e.into_inner());
        let Some(bytes) = record.value.as_deref() else {
            all.remove(&app_id);
            return;
        };
        let app = match codec.decode::<App>(bytes) {
            Ok(app) => app,
            Err(error) => {
                tracing::error!(%error, app_id, "app record refused; its secrets are dropped");
                all.remove(&app_id);
                return;
            }
        };
        let Some(key) = key else {
            if !app.signing_secrets.is_empty() {
                tracing::error!(
                    app_id,
                    "the app has signing secrets but no master key is configured; its webhooks go unsigned"
                );
            }
            all.remove(&app_id);
            return;
        };
        let secrets = app
            .signing_secrets
            .iter()
            .filter_map(|stored| match key.decrypt(stored) {
                Ok(value) => Some(SigningSecret {
                    secret_id: stored.secret_id.clone(),
                    value,
                    expires_at: stored.expires_at,
                }),
                Err(error) => {
                    tracing::error!(%error, app_id, "a signing secret does not decrypt; it is skipped");
                    None
                }
            })
            .collect();
        all.insert(app_id, Arc::new(secrets));
    }

    /// Writes a subscription in memory ahead of its record (after disabling it), so the
    /// notifications behind it see the change at once.
    pub fn put_subscription(&self, subscription: Subscription) {
        self.subscriptions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(subscription.subscription_id.clone(), Arc::new(subscription));
    }
}
