//! The webhook channel's settings.

use serde::Deserialize;

/// How webhooks are sent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    /// How long one attempt may take, connection included, in milliseconds.
    pub timeout_ms: u64,
    /// How long connecting may take, in milliseconds.
    pub connect_timeout_ms: u64,
    /// Payloads larger than this are dead-lettered instead of sent, in bytes.
    pub max_payload_bytes: usize,
    /// How much of a receiver's answer is kept in the attempt record, in bytes.
    pub max_response_body_bytes: usize,
    /// Networks (CIDR) that deliveries may reach although they are not public, e.g.
    /// `10.20.0.0/16` for a receiver inside the platform. Empty: public addresses only.
    pub allow_networks: Vec<String>,
    /// Idle keep-alive connections kept per host.
    pub pool_idle_per_host: usize,
    /// The `User-Agent` header.
    pub user_agent: String,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            timeout_ms: 15_000,
            connect_timeout_ms: 5_000,
            max_payload_bytes: 1024 * 1024,
            max_response_body_bytes: 1024,
            allow_networks: Vec::new(),
            pool_idle_per_host: 256,
            user_agent: concat!("Herald-Webhooks/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}
