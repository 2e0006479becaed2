//! Apps: the third-party applications that own subscriptions, API keys and webhook signing
//! secrets, as stored in the compacted topic `herald.apps` (field for field the
//! `dev.herald.App` Avro record). Secrets are stored encrypted; this crate only carries them.

use serde::{Deserialize, Serialize};

/// The hash of one API key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyHash {
    /// Public id of the key.
    pub key_id: String,
    /// PHC string of the key's hash.
    pub hash: String,
    /// When it was issued, epoch milliseconds.
    #[serde(deserialize_with = "crate::time::epoch_ms")]
    pub created_at: i64,
    /// When it was revoked, if it was.
    #[serde(default, deserialize_with = "crate::time::optional_epoch_ms")]
    pub revoked_at: Option<i64>,
}

/// A webhook signing secret, encrypted with Herald's master key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedSecret {
    /// Id of the secret.
    pub secret_id: String,
    /// The encrypted secret (base64 in JSON, bytes in Avro).
    #[serde(with = "base64_bytes")]
    pub ciphertext: Vec<u8>,
    /// The AEAD nonce.
    #[serde(with = "base64_bytes")]
    pub nonce: Vec<u8>,
    /// Version of the master key that encrypted it.
    pub key_version: i32,
    /// When it was created, epoch milliseconds.
    #[serde(deserialize_with = "crate::time::epoch_ms")]
    pub created_at: i64,
    /// When it stops being used for signing, if ever: the end of a rotation's overlap window.
    #[serde(default, deserialize_with = "crate::time::optional_epoch_ms")]
    pub expires_at: Option<i64>,
}

impl EncryptedSecret {
    /// Whether it still signs at `now_ms`.
    pub fn is_active(&self, now_ms: i64) -> bool {
        self.expires_at.is_none_or(|at| at > now_ms)
    }
}

/// An app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct App {
    /// Unique id; the record's key.
    pub app_id: String,
    /// The tenant that owns the app.
    pub owner_tenant: String,
    /// Tenants whose events the app may see; `None` means all.
    #[serde(default)]
    pub tenant_scope: Option<Vec<String>>,
    /// Human-readable name.
    pub name: String,
    /// Hashes of its API keys.
    #[serde(default)]
    pub api_key_hashes: Vec<ApiKeyHash>,
    /// Its signing secrets; more than one during a rotation.
    #[serde(default)]
    pub signing_secrets: Vec<EncryptedSecret>,
    /// Creation time, epoch milliseconds.
    #[serde(deserialize_with = "crate::time::epoch_ms")]
    pub created_at: i64,
    /// Last change, epoch milliseconds.
    #[serde(deserialize_with = "crate::time::epoch_ms")]
    pub updated_at: i64,
    /// Incremented on every change.
    pub version: i64,
}

/// Avro `bytes` render as base64 in Herald's JSON, so they read back from base64.
mod base64_bytes {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD
            .decode(text.as_bytes())
            .map_err(|e| serde::de::Error::custom(format!("not base64: {e}")))
    }
}
