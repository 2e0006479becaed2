//! Alibaba Cloud SMS `SendSms` (API version 2017-05-25) over the RPC-style API: every
//! parameter, sorted, percent-encoded (RFC 3986) and joined into the string to sign
//! `POST&%2F&<encoded query>`, signed with HMAC-SHA1 keyed by `<AccessKeySecret>&`.
//! Replies: `{"Code": "OK", …}` or an error code.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use herald_core::Notification;
use herald_core::retry::AttemptOutcome;
use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use serde_json::Value as Json;
use sha1::Sha1;

use super::{ProviderRequest, SmsConfig};

/// The public endpoint.
pub const ENDPOINT: &str = "https://dysmsapi.aliyuncs.com";

/// RFC 3986 unreserved characters stay; everything else is %XX (upper case).
const ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn encode(text: &str) -> String {
    utf8_percent_encode(text, ENCODE).to_string()
}

/// The signature of `params` for an HTTP POST.
pub fn sign(params: &BTreeMap<String, String>, access_key_secret: &str) -> String {
    let canonical = params
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let to_sign = format!("POST&{}&{}", encode("/"), encode(&canonical));
    let mut mac = Hmac::<Sha1>::new_from_slice(format!("{access_key_secret}&").as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The template parameters as Aliyun wants them: a JSON object of strings.
fn template_params(n: &Notification) -> Result<String, String> {
    let fields = crate::channels::template_fields(n, "Aliyun SMS")?;
    let object: serde_json::Map<String, Json> = fields
        .into_iter()
        .map(|(k, v)| (k, Json::String(v)))
        .collect();
    Ok(Json::Object(object).to_string())
}

/// The `SendSms` request for `n`.
pub fn request(
    config: &SmsConfig,
    n: &Notification,
    template_code: Option<&str>,
) -> Result<ProviderRequest, String> {
    let template_code = template_code
        .ok_or("Aliyun SMS sends approved templates: the subscription has no --template-id")?;
    let secret = config.access_key_secret.as_deref().unwrap_or_default();
    let mut params: BTreeMap<String, String> = [
        (
            "AccessKeyId",
            config.access_key_id.clone().unwrap_or_default(),
        ),
        ("Action", "SendSms".to_owned()),
        ("Format", "JSON".to_owned()),
        ("RegionId", "cn-hangzhou".to_owned()),
        ("SignatureMethod", "HMAC-SHA1".to_owned()),
        (
            "SignatureNonce",
            format!("{}-{}", n.notification_id, herald_core::time::now_ms()),
        ),
        ("SignatureVersion", "1.0".to_owned()),
        (
            "Timestamp",
            chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        ),
        ("Version", "2017-05-25".to_owned()),
        ("PhoneNumbers", n.destination.clone()),
        ("SignName", config.sign_name.clone().unwrap_or_default()),
        ("TemplateCode", template_code.to_owned()),
        ("TemplateParam", template_params(n)?),
        ("OutId", n.notification_id.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let signature = sign(&params, secret);
    params.insert("Signature".to_owned(), signature);
    let body = params
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let mut headers = HeaderMap::new();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    Ok(ProviderRequest {
        url: format!(
            "{}/",
            config
                .endpoint
                .as_deref()
                .unwrap_or(ENDPOINT)
                .trim_end_matches('/')
        ),
        headers,
        body: body.into_bytes(),
    })
}

/// What Aliyun's reply means. Aliyun answers errors with HTTP 200 or 4xx and a `Code`.
pub fn classify(http: AttemptOutcome, body: Option<&str>) -> AttemptOutcome {
    let reply: Option<Json> = body.and_then(|b| serde_json::from_str(b).ok());
    let Some(code) = reply
        .as_ref()
        .and_then(|r| r.get("Code"))
        .and_then(Json::as_str)
    else {
        return match http {
            AttemptOutcome::Delivered => AttemptOutcome::Permanent {
                reason: format!("aliyun answered without a Code: {:?}", body.unwrap_or("")),
            },
            other => other,
        };
    };
    let message = reply
        .as_ref()
        .and_then(|r| r.get("Message"))
        .and_then(Json::as_str)
        .unwrap_or("");
    classify_code(code, message)
}

/// What an Aliyun `Code` means.
pub fn classify_code(code: &str, message: &str) -> AttemptOutcome {
    let reason = format!("aliyun {code}: {message}");
    match code {
        "OK" => AttemptOutcome::Delivered,
        // Throttled: per-number minute/hour limits, the API's QPS limit.
        "isv.BUSINESS_LIMIT_CONTROL" | "Throttling.User" | "isv.THROTTLING" => {
            AttemptOutcome::Retryable {
                retry_after: Some(Duration::from_secs(60)),
                reason,
            }
        }
        // The account ran out of money, or Aliyun had a fault: an operator can fix it.
        "isv.AMOUNT_NOT_ENOUGH" | "isp.SYSTEM_ERROR" | "ServiceUnavailable" => {
            AttemptOutcome::Retryable {
                retry_after: None,
                reason,
            }
        }
        // An invalid or blacklisted number, a missing template parameter, a refused template
        // or signature, bad credentials: will fail again.
        _ => AttemptOutcome::Permanent { reason },
    }
}
