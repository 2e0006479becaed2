//! The email channel's settings: the SMTP relay and the default sender.

use std::fmt;

use serde::Deserialize;

/// How the connection to the relay is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// Plain SMTP, upgraded with STARTTLS (required): port 587.
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS): port 465.
    Tls,
    /// No encryption: only for a relay on the same host or a test sink.
    None,
}

/// How email is sent.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmailConfig {
    /// The SMTP relay's host.
    pub smtp_host: String,
    /// Its port.
    pub smtp_port: u16,
    /// How the connection is secured.
    pub security: SmtpSecurity,
    /// User name for SMTP AUTH, if the relay asks for it.
    pub username: Option<String>,
    /// Password for SMTP AUTH (never printed).
    pub password: Option<String>,
    /// The sender when a subscription names none, e.g. `Herald <notify@example.com>`.
    pub from: String,
    /// How long one attempt may take, in milliseconds.
    pub timeout_ms: u64,
    /// Connections kept open to the relay.
    pub pool_size: u32,
}

impl Default for EmailConfig {
    fn default() -> Self {
        Self {
            smtp_host: "127.0.0.1".to_owned(),
            smtp_port: 587,
            security: SmtpSecurity::default(),
            username: None,
            password: None,
            from: "Herald <herald@localhost>".to_owned(),
            timeout_ms: 30_000,
            pool_size: 8,
        }
    }
}

impl fmt::Debug for EmailConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailConfig")
            .field("smtp_host", &self.smtp_host)
            .field("smtp_port", &self.smtp_port)
            .field("security", &self.security)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("from", &self.from)
            .field("timeout_ms", &self.timeout_ms)
            .field("pool_size", &self.pool_size)
            .finish()
    }
}
