//! The webhook channel against real local HTTP receivers: classification of answers, the SSRF
//! guard, headers and signatures as sent.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap as AxumHeaders, StatusCode as AxumStatus};
use herald_core::Notification;
use herald_core::retry::AttemptOutcome;
use reqwest::StatusCode;

use super::client::{classify, retry_after};
use super::*;
use crate::channels::AttemptContext;
use crate::state::{SigningSecret, SubscriptionView};

fn notification(destination: &str) -> Notification {
    Notification {
        notification_id: "msg_test".into(),
        event_id: "e-1".into(),
        event_type: "order.paid".into(),
        event_source: "/orders".into(),
        event_time: 0,
        subscription_id: "sub-1".into(),
        app_id: "app-1".into(),
        channel: "webhook".into(),
        destination: destination.into(),
        ordering_key: None,
        payload: r#"{"order_id":"o-1"}"#.into(),
        content_type: "application/json".into(),
        attempt: 0,
        created_at: 0,
        traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
    }
}

fn channel(allow: &[&str]) -> WebhookChannel {
    WebhookChannel::new(&WebhookConfig {
        allow_networks: allow.iter().map(|s| (*s).to_owned()).collect(),
        timeout_ms: 2_000,
        ..WebhookConfig::default()
    })
    .unwrap()
}

async fn attempt(
    channel: &WebhookChannel,
    n: &Notification,
    view: Option<&SubscriptionView>,
) -> super::AttemptReport {
    channel
        .attempt(
            n,
            AttemptContext {
                subscription: view,
                attempt: 1,
            },
        )
        .await
}

/// A receiver on 127.0.0.1:0 answering `status`; returns its URL and the headers it saw.
async fn receiver(status: u16) -> (String, Arc<Mutex<Vec<AxumHeaders>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let kept = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: AxumHeaders, _body: String| {
            let kept = kept.clone();
            async move {
                kept.lock().unwrap().push(headers);
                (AxumStatus::from_u16(status).unwrap(), "thanks")
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}/hook"), seen)
}

#[test]
fn status_codes_are_classified_as_the_design_says() {
    let retry = |code: u16| {
        matches!(
            classify(StatusCode::from_u16(code).unwrap(), None, None),
            AttemptOutcome::Retryable { .. }
        )
    };
    for code in [500, 502, 503, 504, 408, 429] {
        assert!(retry(code), "{code} retries");
    }
    for code in [400, 401, 403, 404, 413, 422] {
        assert!(
            matches!(
                classify(StatusCode::from_u16(code).unwrap(), None, None),
                AttemptOutcome::Permanent { .. }
            ),
            "{code} dead-letters"
        );
    }
    assert!(matches!(
        classify(StatusCode::GONE, None, None),
        AttemptOutcome::Gone { .. }
    ));
    assert_eq!(
        classify(StatusCode::NO_CONTENT, None, None),
        AttemptOutcome::Delivered
    );
    match classify(StatusCode::FOUND, None, Some("https://elsewhere")) {
        AttemptOutcome::Permanent { reason } => {
            assert!(reason.contains("not followed"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn retry_after_reads_seconds_and_http_dates() {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("retry-after", "120".parse().unwrap());
    assert_eq!(retry_after(&headers), Some(Duration::from_secs(120)));
    let later = std::time::SystemTime::now() + Duration::from_secs(3600);
    headers.insert(
        "retry-after",
        httpdate::fmt_http_date(later).parse().unwrap(),
    );
    let parsed = retry_after(&headers).unwrap();
    assert!(
        parsed > Duration::from_secs(3590) && parsed <= Duration::from_secs(3600),
        "{parsed:?}"
    );
    headers.insert("retry-after", "soon".parse().unwrap());
    assert_eq!(retry_after(&headers), None);
}

#[tokio::test]
async fn private_and_loopback_destinations_are_refused_unless_allow_listed() {
    let (url, seen) = receiver(200).await;
    let port = url
        .split(':')
        .nth(2)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let guarded = channel(&[]);
    for destination in [
        url.clone(),
        "http://10.0.0.1/hook".to_owned(),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        format!("http://[::1]:{port}/hook"),
        format!("http://localhost:{port}/hook"),
    ] {
        let report = attempt(&guarded, &notification(&destination), None).await;
        match &report.outcome {
            AttemptOutcome::Permanent { reason } => {
                assert!(
                    reason.starts_with("refused destination"),
                    "{destination}: {reason}"
                )
            }
            other => panic!("{destination}: {other:?}"),
        }
    }
    assert!(
        seen.lock().unwrap().is_empty(),
        "nothing reached the receiver"
    );

    let allowing = channel(&["127.0.0.1/32"]);
    let report = attempt(&allowing, &notification(&url), None).await;
    assert_eq!(report.outcome, AttemptOutcome::Delivered, "{report:?}");
    let localhost = format!("http://localhost:{port}/hook");
    let report = attempt(&allowing, &notification(&localhost), None).await;
    assert_eq!(report.outcome, AttemptOutcome::Delivered, "{report:?}");
}

#[tokio::test]
async fn requests_carry_standard_webhooks_headers_and_the_subscriptions_own() {
    let (url, seen) = receiver(200).await;
    let mut spec = crate::testkit::webhook_subscription("sub-1", "app-1", &url);
    spec.destination
        .headers
        .insert("x-team".into(), "blue".into());
    spec.destination
        .headers
        .insert("webhook-id".into(), "forged".into());
    let view = SubscriptionView {
        spec: Arc::new(spec),
        secrets: Arc::new(vec![SigningSecret {
            secret_id: "s1".into(),
            value: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
            expires_at: None,
        }]),
    };
    let report = attempt(
        &channel(&["127.0.0.1/32"]),
        &notification(&url),
        Some(&view),
    )
    .await;
    assert_eq!(report.outcome, AttemptOutcome::Delivered);
    assert_eq!(report.response_code, Some(200));
    assert_eq!(report.response_body.as_deref(), Some("thanks"));
    let headers = seen.lock().unwrap()[0].clone();
    assert_eq!(headers["webhook-id"], "msg_test");
    assert_eq!(headers["x-team"], "blue");
    assert!(
        headers["webhook-signature"]
            .to_str()
            .unwrap()
            .starts_with("v1,")
    );
    assert!(
        headers["traceparent"]
            .to_str()
            .unwrap()
            .starts_with("00-0af7")
    );
    let timestamp: i64 = headers["webhook-timestamp"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((timestamp - herald_core::time::now_ms() / 1000).abs() < 60);
}

#[tokio::test]
async fn oversized_payloads_and_unanswered_ports_are_classified() {
    let mut small = WebhookConfig {
        allow_networks: vec!["127.0.0.1/32".into()],
        max_payload_bytes: 4,
        ..WebhookConfig::default()
    };
    let (url, _) = receiver(200).await;
    let report = attempt(
        &WebhookChannel::new(&small).unwrap(),
        &notification(&url),
        None,
    )
    .await;
    assert!(
        matches!(report.outcome, AttemptOutcome::Permanent { ref reason } if reason.contains("exceeds"))
    );
    small.max_payload_bytes = 1024;
    // A port nobody listens on: the connection is refused, which may pass.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let report = attempt(
        &WebhookChannel::new(&small).unwrap(),
        &notification(&format!("http://127.0.0.1:{port}/hook")),
        None,
    )
    .await;
    assert!(
        matches!(report.outcome, AttemptOutcome::Retryable { ref reason, .. } if reason.contains("connection failed")),
        "{report:?}"
    );
}
