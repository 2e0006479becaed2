//! The WeChat channel's settings: the Official Account's credentials.

use std::fmt;

use serde::Deserialize;

/// Which Official Account sends.
#[derive(Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct WechatConfig {
    /// The account's AppID.
    pub app_id: String,
    /// Its AppSecret (never printed).
    pub app_secret: String,
    /// The API's base URL; `https://api.weixin.qq.com` when unset.
    pub endpoint: Option<String>,
}

impl fmt::Debug for WechatConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WechatConfig")
            .field("app_id", &self.app_id)
            .field("app_secret", &"<redacted>")
            .field("endpoint", &self.endpoint)
            .finish()
    }
}
