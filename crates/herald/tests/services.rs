//! Every long-running service as its real process — `herald router`, `herald deliver`,
//! `herald inbox`, `herald admin` — on the real broker and registry:
//! - each serves `/metrics` with the metrics the README documents for it;
//! - SIGTERM to the router and the delivery service in the middle of a load makes them exit 0
//!   within the deadline, and once restarted every event is delivered (nothing lost);
//! - SIGTERM to the inbox and the admin service makes them exit 0 within the deadline.

use std::collections::HashSet;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use herald_deliver::testkit::Receiver;
use herald_kafka::testkit::{TestKafka, test_registry};
use serde_json::{Value, json};

const EVENTS: usize = 300;
const OPERATOR: &str = "operator-token-for-the-services-test";
const MASTER_KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";

/// The metrics the README's **Metrics** table documents, per service.
const DOCUMENTED: &[(&str, &[&str])] = &[
    (
        "router",
        &[
            "herald_router_events_total",
            "herald_router_notifications_total",
            "herald_router_matches_per_event",
            "herald_router_transaction_seconds",
            "herald_router_events_committed_total",
            "herald_router_consumer_lag",
            "herald_router_subscriptions",
        ],
    ),
    (
        "deliver",
        &[
            "herald_deliver_attempts_total",
            "herald_deliver_attempt_seconds",
            "herald_deliver_committed_total",
            "herald_deliver_consumer_lag",
            "herald_deliver_in_flight",
        ],
    ),
    (
        "inbox",
        &[
            "herald_inbox_http_requests_total",
            "herald_inbox_http_request_seconds",
        ],
    ),
    (
        "admin",
        &[
            "herald_admin_http_requests_total",
            "herald_admin_http_request_seconds",
        ],
    ),
];

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Service {
    name: &'static str,
    child: Child,
    log: std::path::PathBuf,
}

fn start(name: &'static str, kafka: &TestKafka, args: &[String]) -> Service {
    let log = std::env::temp_dir().join(format!("{}-{name}.log", kafka.prefix()));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(args)
        .env("RUST_LOG", "info")
        .env("HERALD_MASTER_KEY", MASTER_KEY)
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .unwrap_or_else(|e| panic!("herald {name} starts: {e}"));
    Service { name, child, log }
}

impl Service {
    /// SIGTERM, then the exit status within `deadline`.
    fn terminate(mut self, deadline: Duration) {
        let exit =
            herald_kafka::testkit::terminate(&mut self.child, deadline).unwrap_or_else(|| {
                panic!(
                    "herald {} did not exit within {deadline:?} of SIGTERM (log: {})",
                    self.name,
                    self.log.display()
                )
            });
        assert!(
            exit.success(),
            "herald {} exited with {exit} on SIGTERM (log: {})",
            self.name,
            self.log.display()
        );
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn wait_http(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while reqwest::get(url).await.is_err() {
        assert!(Instant::now() < deadline, "{url} never answered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn delivered(receiver: &Receiver) -> HashSet<String> {
    receiver
        .received()
        .into_iter()
        .filter(|r| r.status == 200)
        .map(|r| r.webhook_id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_serves_its_metrics_and_stops_cleanly_on_sigterm() {
    let kafka = TestKafka::new("services");
    let brokers = kafka.config().brokers.clone();
    let prefix = kafka.prefix().to_owned();
    let topic = format!("events.{prefix}");
    kafka
        .admin()
        .ensure_topics(&[herald_kafka::TopicSpec::new(&topic, 3)])
        .await
        .unwrap();
    let catalog = herald_contract::Catalog::load_dir(
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas").as_ref(),
    )
    .unwrap();
    let paid = catalog.by_event_type("order.paid").unwrap();
    let registry = herald_contract::RegistryClient::new(&herald_contract::RegistryConfig::new(
        test_registry(),
    ))
    .unwrap();
    registry
        .register(&paid.full_name, &paid.text)
        .await
        .unwrap();
    let receiver = Receiver::start().await;
    let (router_port, deliver_port, inbox_port, admin_port) =
        (free_port(), free_port(), free_port(), free_port());
    let common = |extra: &[&str]| -> Vec<String> {
        extra
            .iter()
            .map(|s| s.to_string())
            .chain([
                "--brokers".into(),
                brokers.clone(),
                "--prefix".into(),
                prefix.clone(),
            ])
            .collect()
    };
    let router_args = common(&[
        "router",
        "--topics",
        &topic,
        "--partitions",
        "3",
        "--registry",
        &test_registry(),
        "--metrics-addr",
        &format!("127.0.0.1:{router_port}"),
    ]);
    let deliver_args = common(&[
        "deliver",
        "--channel",
        "webhook",
        "--partitions",
        "3",
        "--allow-network",
        "127.0.0.1/32",
        "--metrics-addr",
        &format!("127.0.0.1:{deliver_port}"),
    ]);
    let admin = start(
        "admin",
        &kafka,
        &common(&[
            "admin",
            "--listen",
            &format!("127.0.0.1:{admin_port}"),
            "--operator-token",
            OPERATOR,
            "--registry",
            &test_registry(),
            "--strategy",
            "record",
            "--schemas",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas"),
            "--allow-network",
            "127.0.0.1/32",
        ]),
    );
    let inbox = start(
        "inbox",
        &kafka,
        &common(&[
            "inbox",
            "--listen",
            &format!("127.0.0.1:{inbox_port}"),
            "--partitions",
            "3",
        ]),
    );
    let admin_url = format!("http://127.0.0.1:{admin_port}");
    wait_http(&format!("{admin_url}/healthz")).await;
    let http = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        http.post(format!("{admin_url}{path}"))
            .bearer_auth(OPERATOR)
            .json(&body)
            .send()
    };
    let created: Value = post("/v1/apps", json!({"app_id": "shop", "name": "Shop"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let app_key = created["api_key"].as_str().unwrap().to_owned();
    let sub = post(
        "/v1/subscriptions",
        json!({"app_id": "shop", "subscription_id": "all-paid", "event_types": ["order.paid"],
        "channel": "webhook", "destination": {"address": receiver.url("hook")}}),
    )
    .await
    .unwrap();
    assert_eq!(sub.status(), 201);
    let mut router = start("router", &kafka, &router_args);
    let mut deliver = start("deliver", &kafka, &deliver_args);

    // The load: events ingested through the admin API while the services run.
    let example: Value = http
        .get(format!("{admin_url}/v1/event-types/order.paid"))
        .bearer_auth(OPERATOR)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["example"]
        .clone();
    let load = {
        let (http, admin_url, topic) = (http.clone(), admin_url.clone(), topic.clone());
        tokio::spawn(async move {
            for i in 0..EVENTS {
                let mut data = example.clone();
                data["order_id"] = json!(format!("o-{i}"));
                let body = json!({"type": "order.paid", "topic": topic, "key": format!("o-{i}"), "data": data});
                let answer = http
                    .post(format!("{admin_url}/v1/events"))
                    .bearer_auth(OPERATOR)
                    .header("idempotency-key", format!("load-{i}"))
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(answer.status(), 202, "{}", answer.text().await.unwrap());
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    // SIGTERM mid-load, then restart: the services drain and commit what they did.
    let deadline = Instant::now() + Duration::from_secs(120);
    while delivered(&receiver).len() < EVENTS / 4 {
        assert!(
            Instant::now() < deadline,
            "only {} delivered before the SIGTERMs",
            delivered(&receiver).len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let at_stop = delivered(&receiver).len();
    assert!(
        at_stop < EVENTS,
        "the load was over before the SIGTERMs; the test would prove nothing"
    );
    router.terminate(Duration::from_secs(15));
    deliver.terminate(Duration::from_secs(20));
    router = start("router", &kafka, &router_args);
    deliver = start("deliver", &kafka, &deliver_args);
    load.await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    while delivered(&receiver).len() < EVENTS {
        assert!(
            Instant::now() < deadline,
            "{} of {EVENTS} delivered after the restart (router log: {})",
            delivered(&receiver).len(),
            router.log.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        delivered(&receiver).len(),
        EVENTS,
        "every event delivered, each under one webhook-id"
    );
    eprintln!(
        "services: {at_stop} of {EVENTS} delivered at the SIGTERMs, all {EVENTS} after the restart"
    );

    // Metrics: one request to the inbox, so its request counter has a sample.
    let inbox_url = format!("http://127.0.0.1:{inbox_port}");
    wait_http(&format!("{inbox_url}/healthz")).await;
    let polled = http
        .get(format!("{inbox_url}/v1/inbox"))
        .bearer_auth(&app_key)
        .send()
        .await
        .unwrap();
    assert_eq!(polled.status(), 200);
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    for (service, names) in DOCUMENTED {
        let port = match *service {
            "router" => router_port,
            "deliver" => deliver_port,
            "inbox" => inbox_port,
            _ => admin_port,
        };
        // Some series appear only once first set (consumer lag comes with the consumer's
        // periodic statistics), so scrape until every documented one is there or 20 s pass.
        let has = |text: &str, name: &str| {
            text.lines()
                .any(|l| l.starts_with(name) && !l.starts_with('#'))
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let text = loop {
            let text = http
                .get(format!("http://127.0.0.1:{port}/metrics"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            if names.iter().all(|name| has(&text, name)) || std::time::Instant::now() > deadline {
                break text;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        for name in *names {
            assert!(
                readme.contains(&format!("`{name}`")),
                "{name} is not documented in the README"
            );
            assert!(
                has(&text, name),
                "herald {service} /metrics lacks {name}:\n{text}"
            );
        }
    }
    router.terminate(Duration::from_secs(15));
    deliver.terminate(Duration::from_secs(20));
    inbox.terminate(Duration::from_secs(10));
    admin.terminate(Duration::from_secs(10));
}
