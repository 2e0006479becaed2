//! App API keys: `hk_<key id>_<secret>`, stored in `herald.apps` as Argon2 PHC hashes beside
//! their key id, so the key itself is never kept. A key is checked against its hash once and
//! then remembered in memory until its app's record changes (a revocation takes effect as soon
//! as the changed record is read).

use std::collections::HashMap;
use std::sync::RwLock;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use herald_contract::RecordCodec;
use herald_core::app::{ApiKeyHash, App};
use herald_kafka::ReadRecord;

/// A new API key and the hash to store: `(key, hash)`. The key is shown once.
pub fn generate_api_key(now_ms: i64) -> (String, ApiKeyHash) {
    let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let secret = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let key = format!("hk_{id}_{secret}");
    let salt = SaltString::generate(&mut OsRng);
    let hash = Argon2::default()
        .hash_password(key.as_bytes(), &salt)
        .expect("Argon2 hashes any key")
        .to_string();
    (
        key,
        ApiKeyHash {
            key_id: id,
            hash,
            created_at: now_ms,
            revoked_at: None,
        },
    )
}

/// The key id of `key`, if it has the `hk_<id>_<secret>` shape.
fn key_id(key: &str) -> Option<&str> {
    let rest = key.strip_prefix("hk_")?;
    let (id, secret) = rest.split_once('_')?;
    (!id.is_empty() && !secret.is_empty()).then_some(id)
}

/// The apps' key hashes, and the keys already verified.
#[derive(Default)]
pub struct ApiKeys {
    /// key id → (app id, hash), active keys only.
    hashes: RwLock<HashMap<String, (String, String)>>,
    /// key → app id, for keys that verified.
    verified: RwLock<HashMap<String, String>>,
}

impl ApiKeys {
    /// Applies a record of `herald.apps`: its active keys replace the app's previous ones.
    pub fn apply(&self, codec: &RecordCodec, record: &ReadRecord) {
        let app_id = record
            .key
            .as_deref()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .unwrap_or_default();
        let app = record
            .value
            .as_deref()
            .and_then(|v| codec.decode::<App>(v).ok());
        let mut hashes = self.hashes.write().unwrap_or_else(|e| e.into_inner());
        hashes.retain(|_, (owner, _)| owner != &app_id);
        if let Some(app) = app {
            for key in app.api_key_hashes.iter().filter(|k| k.revoked_at.is_none()) {
                hashes.insert(key.key_id.clone(), (app_id.clone(), key.hash.clone()));
            }
        }
        drop(hashes);
        self.verified
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, owner| owner != &app_id);
    }

    /// The app `key` belongs to, if it is an active key.
    pub fn app_of(&self, key: &str) -> Option<String> {
        if let Some(app) = self
            .verified
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
        {
            return Some(app.clone());
        }
        let (app, hash) = self
            .hashes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key_id(key)?)?
            .clone();
        let parsed = PasswordHash::new(&hash).ok()?;
        Argon2::default()
            .verify_password(key.as_bytes(), &parsed)
            .ok()?;
        self.verified
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_owned(), app.clone());
        Some(app)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_verifies_against_its_hash_and_nothing_else_does() {
        let (key, hash) = generate_api_key(1);
        assert!(key.starts_with(&format!("hk_{}_", hash.key_id)));
        assert!(hash.hash.starts_with("$argon2"));
        let keys = ApiKeys::default();
        keys.hashes
            .write()
            .unwrap()
            .insert(hash.key_id.clone(), ("app-1".into(), hash.hash.clone()));
        assert_eq!(keys.app_of(&key).as_deref(), Some("app-1"));
        assert_eq!(
            keys.app_of(&key).as_deref(),
            Some("app-1"),
            "from the cache"
        );
        let forged = format!("hk_{}_{}", hash.key_id, "0".repeat(64));
        assert_eq!(keys.app_of(&forged), None);
        assert_eq!(keys.app_of("not-a-key"), None);
    }
}
