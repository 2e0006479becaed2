//! `--otlp-endpoint`: the real `herald deliver` process exports each attempt as an
//! OpenTelemetry span over OTLP/HTTP to a collector, as a child of the trace the event's
//! producer started (the notification's `traceparent`).

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use herald_core::topics::TopicNames;
use herald_deliver::testkit::{
    Receiver, notification, produce_notifications, put_subscriptions, test_config,
    webhook_subscription,
};
use herald_kafka::testkit::TestKafka;
use serde_json::Value;

/// A stand-in OTLP/HTTP collector that keeps every JSON export request.
async fn collector() -> (String, Arc<Mutex<Vec<Value>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let app = axum::Router::new()
        .route(
            "/v1/traces",
            axum::routing::post(
                |State(got): State<Arc<Mutex<Vec<Value>>>>, body: String| async move {
                    got.lock()
                        .unwrap()
                        .push(serde_json::from_str(&body).unwrap_or(Value::String(body)));
                    "{}"
                },
            ),
        )
        .with_state(got.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}"), got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_attempts_are_exported_as_children_of_the_producers_trace() {
    let kafka = TestKafka::new("otlp");
    let names = TopicNames::with_prefix(kafka.prefix()).unwrap();
    herald_deliver::ensure_topics(&test_config(&kafka, &[200]))
        .await
        .unwrap();
    let receiver = Receiver::start().await;
    let sub = webhook_subscription("sub-otlp", "app-otlp", &receiver.url("traced"));
    put_subscriptions(&kafka, &names, std::slice::from_ref(&sub));
    let (trace_id, parent_id) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let mut n = notification(&sub, "otlp", 1);
    n.traceparent = Some(format!("00-{trace_id}-{parent_id}-01"));
    produce_notifications(&kafka, &names, std::slice::from_ref(&n));
    let (endpoint, exported) = collector().await;

    let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args([
            "deliver",
            "--brokers",
            &kafka.config().brokers,
            "--prefix",
            kafka.prefix(),
        ])
        .args([
            "--channel",
            "webhook",
            "--partitions",
            "3",
            "--allow-network",
            "127.0.0.1/32",
        ])
        .args(["--otlp-endpoint", &endpoint])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("herald deliver starts");
    let got = receiver
        .wait_until(Duration::from_secs(60), |r| !r.is_empty())
        .await;
    assert_eq!(got.len(), 1, "the notification was delivered");
    // SIGTERM: the service drains, and the exporter sends what it buffered before exit.
    let exit = herald_kafka::testkit::terminate(&mut child, Duration::from_secs(20))
        .expect("herald deliver stops within 20 s of SIGTERM");
    assert!(exit.success(), "herald deliver exited with {exit}");

    let exported = exported.lock().unwrap().clone();
    let spans: Vec<(Value, Value)> = exported
        .iter()
        .flat_map(|request| {
            request["resourceSpans"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .flat_map(|resource| {
            let service = resource["resource"]["attributes"]
                .as_array()
                .and_then(|a| a.iter().find(|kv| kv["key"] == "service.name"))
                .map(|kv| kv["value"]["stringValue"].clone())
                .unwrap_or(Value::Null);
            resource["scopeSpans"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .flat_map(|scope| scope["spans"].as_array().cloned().unwrap_or_default())
                .map(move |span| (service.clone(), span))
        })
        .collect();
    let (service, span) = spans
        .iter()
        .find(|(_, span)| span["name"] == "deliver")
        .unwrap_or_else(|| panic!("no deliver span among {exported:?}"));
    assert_eq!(service, "herald-deliver");
    assert_eq!(
        span["traceId"].as_str().map(str::to_lowercase).as_deref(),
        Some(trace_id),
        "{span}"
    );
    assert_eq!(
        span["parentSpanId"]
            .as_str()
            .map(str::to_lowercase)
            .as_deref(),
        Some(parent_id),
        "{span}"
    );
    let attributes = span["attributes"].to_string();
    assert!(
        attributes.contains(&n.notification_id) && attributes.contains("delivered"),
        "{span}"
    );
}
