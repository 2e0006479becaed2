//! The SMS channel's settings: which provider and its credentials.

use std::fmt;

use serde::Deserialize;

/// The SMS providers Herald speaks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SmsProvider {
    /// Alibaba Cloud SMS (`SendSms`, RPC API with an HMAC-SHA1 signature).
    #[default]
    Aliyun,
    /// Twilio Programmable Messaging.
    Twilio,
}

/// How text messages are sent.
#[derive(Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct SmsConfig {
    /// The provider.
    pub provider: SmsProvider,
    /// The API's base URL; the provider's public one when unset (`https://dysmsapi.aliyuncs.com`,
    /// `https://api.twilio.com`).
    pub endpoint: Option<String>,
    /// Aliyun: the AccessKey id.
    pub access_key_id: Option<String>,
    /// Aliyun: the AccessKey secret (never printed).
    pub access_key_secret: Option<String>,
    /// Aliyun: the approved signature name shown in the message.
    pub sign_name: Option<String>,
    /// Twilio: the account SID.
    pub account_sid: Option<String>,
    /// Twilio: the auth token (never printed).
    pub auth_token: Option<String>,
    /// Twilio: the sending number (E.164) or messaging service SID (`MG…`).
    pub from: Option<String>,
}

impl fmt::Debug for SmsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |s: &Option<String>| s.as_ref().map(|_| "<redacted>");
        f.debug_struct("SmsConfig")
            .field("provider", &self.provider)
            .field("endpoint", &self.endpoint)
            .field("access_key_id", &self.access_key_id)
            .field("access_key_secret", &redacted(&self.access_key_secret))
            .field("sign_name", &self.sign_name)
            .field("account_sid", &self.account_sid)
            .field("auth_token", &redacted(&self.auth_token))
            .field("from", &self.from)
            .finish()
    }
}
