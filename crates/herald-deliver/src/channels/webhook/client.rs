//! The webhook transport: one pooled keep-alive HTTP client that never follows redirects,
//! never uses a proxy (a proxy would resolve the host where the SSRF guard cannot see), and
//! connects only to addresses the guard checked. It sends one request and classifies the
//! answer.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use herald_core::retry::AttemptOutcome;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{StatusCode, Url, redirect};

use super::WebhookConfig;
use crate::channels::AttemptReport;
use crate::ssrf::{AddressPolicy, GuardedResolver, refused_in};

/// The HTTP client and the policy it enforces.
pub struct WebhookClient {
    http: reqwest::Client,
    policy: Arc<AddressPolicy>,
    max_response_body_bytes: usize,
    timeout: Duration,
}

impl WebhookClient {
    /// Builds the client from the channel's settings.
    pub fn new(config: &WebhookConfig) -> Result<Self, String> {
        let policy = Arc::new(AddressPolicy::new(&config.allow_networks)?);
        let http = reqwest::Client::builder()
            .redirect(redirect::Policy::none())
            .no_proxy()
            .timeout(Duration::from_millis(config.timeout_ms))
            .connect_timeout(Duration::from_millis(config.connect_timeout_ms))
            .pool_max_idle_per_host(config.pool_idle_per_host)
            .tcp_nodelay(true)
            .user_agent(&config.user_agent)
            .dns_resolver(Arc::new(GuardedResolver {
                policy: policy.clone(),
            }))
            .build()
            .map_err(|e| format!("building the HTTP client: {e}"))?;
        Ok(Self {
            http,
            policy,
            max_response_body_bytes: config.max_response_body_bytes,
            timeout: Duration::from_millis(config.timeout_ms),
        })
    }

    /// Posts `body` to `url` with `headers` and classifies what happened.
    pub async fn post(&self, url: &str, headers: HeaderMap, body: Vec<u8>) -> AttemptReport {
        self.request(reqwest::Method::POST, url, headers, body)
            .await
    }

    /// Gets `url` and classifies what happened (for provider APIs such as WeChat's token).
    pub async fn get(&self, url: &str) -> AttemptReport {
        self.request(reqwest::Method::GET, url, HeaderMap::new(), Vec::new())
            .await
    }

    /// Sends `body` to `url` with `method` and `headers` and classifies what happened.
    pub async fn request(
        &self,
        method: reqwest::Method,
        url: &str,
        headers: HeaderMap,
        body: Vec<u8>,
    ) -> AttemptReport {
        let started = Instant::now();
        let permanent = |reason: String| {
            AttemptReport::without_response(AttemptOutcome::Permanent { reason }, started.elapsed())
        };
        let url = match Url::parse(url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => url,
            Ok(url) => return permanent(format!("{url}: only http and https are delivered")),
            Err(e) => return permanent(format!("{url:?} is not a URL: {e}")),
        };
        // The client resolves host names through the guard, but connects to IP literals
        // directly, so those are checked here.
        let literal = match url.host() {
            Some(url::Host::Ipv4(v4)) => Some(std::net::IpAddr::V4(v4)),
            Some(url::Host::Ipv6(v6)) => Some(std::net::IpAddr::V6(v6)),
            _ => None,
        };
        if let Some(address) = literal
            && let Err(refused) = self.policy.check(url.host_str().unwrap_or(""), address)
        {
            return permanent(refused.to_string());
        }
        let response = self
            .http
            .request(method, url)
            .headers(headers)
            .body(body)
            .send()
            .await;
        let response = match response {
            Ok(response) => response,
            Err(error) => return self.failed(&error, started),
        };
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = self.read_body(response).await;
        let code = Some(i32::from(status.as_u16()));
        let outcome = classify(status, retry_after, location.as_deref());
        AttemptReport {
            outcome,
            response_code: code,
            response_body: body,
            latency: started.elapsed(),
        }
    }

    /// The start of the answer, at most `max_response_body_bytes`, without reading the rest.
    async fn read_body(&self, mut response: reqwest::Response) -> Option<String> {
        let mut kept = Vec::new();
        while kept.len() < self.max_response_body_bytes {
            match response.chunk().await {
                Ok(Some(chunk)) => kept.extend_from_slice(&chunk),
                _ => break,
            }
        }
        if kept.is_empty() {
            return None;
        }
        kept.truncate(self.max_response_body_bytes);
        Some(String::from_utf8_lossy(&kept).into_owned())
    }

    fn failed(&self, error: &reqwest::Error, started: Instant) -> AttemptReport {
        let latency = started.elapsed();
        if let Some(refused) = refused_in(error) {
            return AttemptReport::without_response(
                AttemptOutcome::Permanent {
                    reason: refused.to_string(),
                },
                latency,
            );
        }
        let reason = if error.is_timeout() {
            format!("timed out after {} ms", self.timeout.as_millis())
        } else if error.is_connect() {
            format!("connection failed: {}", chain(error))
        } else {
            format!("request failed: {}", chain(error))
        };
        AttemptReport::without_response(
            AttemptOutcome::Retryable {
                retry_after: None,
                reason,
            },
            latency,
        )
    }
}

/// An error with its sources, `a: b: c`, because reqwest's own message is often just
/// "error sending request".
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![error.to_string()];
    let mut current = error.source();
    while let Some(e) = current {
        parts.push(e.to_string());
        current = e.source();
    }
    parts.dedup();
    parts.join(": ")
}

/// What a status code means for the notification.
pub fn classify(
    status: StatusCode,
    retry_after: Option<Duration>,
    location: Option<&str>,
) -> AttemptOutcome {
    let code = status.as_u16();
    match code {
        200..=299 => AttemptOutcome::Delivered,
        410 => AttemptOutcome::Gone {
            reason: "HTTP 410 Gone: the receiver says the endpoint is gone".to_owned(),
        },
        408 | 429 | 500..=599 => AttemptOutcome::Retryable {
            retry_after,
            reason: format!("HTTP {status}"),
        },
        300..=399 => AttemptOutcome::Permanent {
            reason: format!(
                "HTTP {status}: redirects are not followed (to {})",
                location.unwrap_or("nowhere")
            ),
        },
        _ => AttemptOutcome::Permanent {
            reason: format!("HTTP {status}"),
        },
    }
}

/// `Retry-After` as seconds or as an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(text).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}
