//! Signing secrets at rest: apps' webhook secrets are stored in `herald.apps` encrypted with
//! AES-256-GCM under a master key from configuration, and are decrypted only in memory.
//! Neither the key nor a decrypted secret ever reaches a log: their `Debug` is redacted.

use std::fmt;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use herald_core::app::EncryptedSecret;
use serde::Deserialize;

/// The master key, from 32 base64-encoded bytes.
#[derive(Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct MasterKey {
    key: [u8; 32],
    /// The version recorded beside each secret it encrypts.
    pub version: i32,
}

impl TryFrom<String> for MasterKey {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        Self::parse(&text)
    }
}

impl MasterKey {
    /// Parses 32 bytes in base64 (`openssl rand -base64 32`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|e| format!("the master key is not base64: {e}"))?;
        let key: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
            format!(
                "the master key must be 32 bytes (base64 of `openssl rand -base64 32`), not {}",
                b.len()
            )
        })?;
        Ok(Self { key, version: 1 })
    }

    /// Encrypts `secret` under a fresh random nonce.
    pub fn encrypt(
        &self,
        secret_id: &str,
        secret: &str,
        created_at: i64,
        expires_at: Option<i64>,
    ) -> EncryptedSecret {
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&self.key));
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let ciphertext = cipher
            .encrypt(&nonce, secret.as_bytes())
            .expect("AES-GCM encryption of a short secret cannot fail");
        EncryptedSecret {
            secret_id: secret_id.to_owned(),
            ciphertext,
            nonce: nonce.to_vec(),
            key_version: self.version,
            created_at,
            expires_at,
        }
    }

    /// Decrypts a stored secret.
    pub fn decrypt(&self, stored: &EncryptedSecret) -> Result<String, String> {
        if stored.nonce.len() != 12 {
            return Err(format!(
                "secret {}: nonce of {} bytes, expected 12",
                stored.secret_id,
                stored.nonce.len()
            ));
        }
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&self.key));
        let plain = cipher
            .decrypt(
                Nonce::from_slice(&stored.nonce),
                stored.ciphertext.as_slice(),
            )
            .map_err(|_| {
                format!(
                    "secret {} does not decrypt with master key version {} (wrong key?)",
                    stored.secret_id, self.version
                )
            })?;
        String::from_utf8(plain).map_err(|_| format!("secret {} is not UTF-8", stored.secret_id))
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey(v{}, <redacted>)", self.version)
    }
}

/// A new Standard Webhooks secret: `whsec_` and 24 random bytes in base64.
pub fn generate_whsec() -> String {
    let key = Aes256Gcm::generate_key(&mut OsRng);
    format!("whsec_{}", STANDARD.encode(&key[..24]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_round_trip_and_the_wrong_key_is_refused() {
        let key = MasterKey::parse(&STANDARD.encode([7u8; 32])).unwrap();
        let secret = generate_whsec();
        let stored = key.encrypt("s1", &secret, 0, None);
        assert!(!stored.ciphertext.windows(6).any(|w| w == b"whsec_"));
        assert_eq!(key.decrypt(&stored).unwrap(), secret);
        let other = MasterKey::parse(&STANDARD.encode([8u8; 32])).unwrap();
        assert!(other.decrypt(&stored).unwrap_err().contains("wrong key"));
        assert!(!format!("{key:?}").contains("BwcH"));
        assert!(
            MasterKey::parse("c2hvcnQ=")
                .unwrap_err()
                .contains("32 bytes")
        );
    }
}
