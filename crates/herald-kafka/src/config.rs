//! The `[kafka]` configuration section: where the cluster is and how to reach it.

use std::collections::BTreeMap;
use std::fmt;

use rdkafka::ClientConfig;
use serde::Deserialize;

/// How Herald's services connect to Kafka.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers, comma-separated (`host:port,host:port`).
    pub brokers: String,
    /// The `client.id` sent to the brokers, visible in their logs and quotas.
    #[serde(default = "default_client_id")]
    pub client_id: String,
    /// librdkafka properties passed through verbatim, for TLS and SASL clusters
    /// (`security.protocol`, `sasl.mechanism`, `sasl.username`, `sasl.password`, `ssl.ca.location`,
    /// …). They are applied last, so they override Herald's own choices.
    #[serde(default)]
    pub librdkafka: BTreeMap<String, String>,
}

fn default_client_id() -> String {
    "herald".to_owned()
}

/// What [`set_process_defaults`] set: the client id and pass-through properties every
/// [`KafkaConfig::new`] of this process starts with.
static PROCESS_DEFAULTS: std::sync::OnceLock<(Option<String>, BTreeMap<String, String>)> =
    std::sync::OnceLock::new();

/// Sets, once per process, the client id and librdkafka properties every configuration made
/// with [`KafkaConfig::new`] starts with: how the binary applies the `[kafka]` section of its
/// configuration file to every client it creates. Later calls change nothing.
pub fn set_process_defaults(client_id: Option<String>, librdkafka: BTreeMap<String, String>) {
    let _ = PROCESS_DEFAULTS.set((client_id, librdkafka));
}

impl KafkaConfig {
    /// A configuration for plaintext brokers with this process's defaults (none unless
    /// [`set_process_defaults`] set some).
    pub fn new(brokers: impl Into<String>) -> Self {
        let (client_id, librdkafka) = PROCESS_DEFAULTS.get().cloned().unwrap_or_default();
        Self {
            brokers: brokers.into(),
            client_id: client_id.unwrap_or_else(default_client_id),
            librdkafka,
        }
    }

    /// The librdkafka configuration every Herald client starts from.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("client.id", &self.client_id);
        for (key, value) in &self.librdkafka {
            config.set(key, value);
        }
        config
    }
}

/// Whether a librdkafka property holds a secret that must never reach a log.
fn is_secret_key(key: &str) -> bool {
    ["password", "secret", "key.pem", "token", "private"]
        .iter()
        .any(|needle| key.contains(needle))
}

// Written by hand so that SASL passwords and private keys in `librdkafka` never reach a log.
impl fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted: BTreeMap<&str, &str> = self
            .librdkafka
            .iter()
            .map(|(key, value)| {
                let shown = if is_secret_key(key) {
                    "<redacted>"
                } else {
                    value
                };
                (key.as_str(), shown)
            })
            .collect();
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("client_id", &self.client_id)
            .field("librdkafka", &redacted)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pass_through_settings_override_and_secrets_are_redacted() {
        let mut config = KafkaConfig::new("127.0.0.1:9092");
        config
            .librdkafka
            .insert("sasl.password".to_owned(), "hunter2".to_owned());
        config
            .librdkafka
            .insert("client.id".to_owned(), "custom".to_owned());
        let client = config.client_config();
        assert_eq!(client.get("client.id"), Some("custom"));
        assert_eq!(client.get("sasl.password"), Some("hunter2"));
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }
}
