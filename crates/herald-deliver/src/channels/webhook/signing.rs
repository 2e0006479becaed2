//! Standard Webhooks signatures (<https://www.standardwebhooks.com>): the signed content is
//! `{webhook-id}.{webhook-timestamp}.{body}`; `v1` is HMAC-SHA256 with a `whsec_` secret,
//! `v1a` is ed25519 with a `whsk_` secret key. During a rotation the header carries one
//! signature per active secret, separated by spaces, so receivers holding either secret verify.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signer, SigningKey};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::state::SigningSecret;

/// Why a secret cannot sign.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// The secret is neither `whsec_…` nor `whsk_…` base64.
    #[error("signing secret {secret_id} is malformed: {reason}")]
    Malformed {
        /// The secret's id (never the secret).
        secret_id: String,
        /// What is wrong.
        reason: String,
    },
}

/// The `webhook-signature` header value for `payload`, signed with every secret active at
/// `timestamp` (seconds); `None` when no secret is active.
pub fn signature_header(
    secrets: &[SigningSecret],
    msg_id: &str,
    timestamp: i64,
    payload: &[u8],
) -> Result<Option<String>, SignError> {
    let now_ms = timestamp.saturating_mul(1000);
    let mut signatures = Vec::new();
    for secret in secrets
        .iter()
        .filter(|s| s.expires_at.is_none_or(|at| at > now_ms))
    {
        signatures.push(sign(secret, msg_id, timestamp, payload)?);
    }
    Ok((!signatures.is_empty()).then(|| signatures.join(" ")))
}

/// One signature, `v1,<base64>` or `v1a,<base64>`.
pub fn sign(
    secret: &SigningSecret,
    msg_id: &str,
    timestamp: i64,
    payload: &[u8],
) -> Result<String, SignError> {
    let malformed = |reason: String| SignError::Malformed {
        secret_id: secret.secret_id.clone(),
        reason,
    };
    let mut content = Vec::with_capacity(msg_id.len() + payload.len() + 24);
    content.extend_from_slice(msg_id.as_bytes());
    content.push(b'.');
    content.extend_from_slice(timestamp.to_string().as_bytes());
    content.push(b'.');
    content.extend_from_slice(payload);
    if let Some(encoded) = secret.value.strip_prefix("whsec_") {
        let key = STANDARD
            .decode(encoded)
            .map_err(|e| malformed(format!("not base64 after whsec_: {e}")))?;
        let mut mac = Hmac::<Sha256>::new_from_slice(&key)
            .map_err(|e| malformed(format!("unusable HMAC key: {e}")))?;
        mac.update(&content);
        Ok(format!(
            "v1,{}",
            STANDARD.encode(mac.finalize().into_bytes())
        ))
    } else if let Some(encoded) = secret.value.strip_prefix("whsk_") {
        let bytes = STANDARD
            .decode(encoded)
            .map_err(|e| malformed(format!("not base64 after whsk_: {e}")))?;
        // The 32-byte seed, or the 64-byte keypair (seed then public key).
        let seed: [u8; 32] = bytes
            .get(..32)
            .and_then(|s| s.try_into().ok())
            .filter(|_| bytes.len() == 32 || bytes.len() == 64)
            .ok_or_else(|| malformed(format!("{} bytes, expected 32 or 64", bytes.len())))?;
        let key = SigningKey::from_bytes(&seed);
        Ok(format!(
            "v1a,{}",
            STANDARD.encode(key.sign(&content).to_bytes())
        ))
    } else {
        Err(malformed(
            "expected a whsec_ (HMAC) or whsk_ (ed25519) secret".to_owned(),
        ))
    }
}

/// The public key (`whpk_…`) receivers verify `v1a` signatures with.
pub fn public_key(secret: &SigningSecret) -> Option<String> {
    let bytes = STANDARD.decode(secret.value.strip_prefix("whsk_")?).ok()?;
    let seed: [u8; 32] = bytes.get(..32)?.try_into().ok()?;
    Some(format!(
        "whpk_{}",
        STANDARD.encode(SigningKey::from_bytes(&seed).verifying_key().to_bytes())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signature, Verifier, VerifyingKey};

    fn secret(id: &str, value: &str, expires_at: Option<i64>) -> SigningSecret {
        SigningSecret {
            secret_id: id.to_owned(),
            value: value.to_owned(),
            expires_at,
        }
    }

    /// The reference vector published with the Standard Webhooks specification.
    #[test]
    fn reproduces_the_standard_webhooks_reference_vector() {
        let s = secret("s1", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", None);
        let signature = sign(
            &s,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        )
        .unwrap();
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn a_rotation_signs_with_every_active_secret_and_drops_expired_ones() {
        let old = secret(
            "old",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            Some(2_000_000),
        );
        let new = secret("new", "whsec_dGVzdHNlY3JldHRlc3RzZWNyZXQ=", None);
        let during = signature_header(&[old.clone(), new.clone()], "m", 1_000, b"{}")
            .unwrap()
            .unwrap();
        assert_eq!(during.split(' ').count(), 2, "{during}");
        let after = signature_header(&[old, new], "m", 3_000, b"{}")
            .unwrap()
            .unwrap();
        assert_eq!(after.split(' ').count(), 1, "{after}");
        assert_eq!(signature_header(&[], "m", 1, b"{}").unwrap(), None);
    }

    #[test]
    fn v1a_signatures_verify_with_the_public_key() {
        let seed = [42u8; 32];
        let s = secret("k", &format!("whsk_{}", STANDARD.encode(seed)), None);
        let header = sign(&s, "msg_1", 1_700_000_000, b"{\"a\":1}").unwrap();
        let raw = STANDARD
            .decode(header.strip_prefix("v1a,").unwrap())
            .unwrap();
        let public = public_key(&s).unwrap();
        let public: [u8; 32] = STANDARD
            .decode(public.strip_prefix("whpk_").unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        let signature = Signature::from_slice(&raw).unwrap();
        VerifyingKey::from_bytes(&public)
            .unwrap()
            .verify(b"msg_1.1700000000.{\"a\":1}", &signature)
            .unwrap();
    }

    #[test]
    fn malformed_secrets_are_named_not_shown() {
        let error = sign(&secret("s9", "plain-text-secret", None), "m", 1, b"")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("s9") && !error.contains("plain-text-secret"),
            "{error}"
        );
    }
}
