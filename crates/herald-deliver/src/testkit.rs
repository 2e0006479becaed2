//! Helpers for the delivery service's tests, the binary's SIGKILL test and the benchmarks:
//! subscriptions pointing at local receivers, receivers that record what they got, and the
//! Python stand-ins (`tests/interop/*.py`) that check requests as providers document them.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use herald_contract::RecordCodec;
use herald_contract::records::encode_notification;
use herald_core::app::App;
use herald_core::subscription::{Destination, Ordering};
use herald_core::topics::TopicNames;
use herald_core::{Notification, Subscription};
use herald_kafka::testkit::{RunningService, TestKafka};

use crate::{DeliverConfig, DeliverError, Deliverer};

/// A webhook subscription of `app` to every event type, delivering to `url`.
pub fn webhook_subscription(id: &str, app: &str, url: &str) -> Subscription {
    Subscription {
        subscription_id: id.to_owned(),
        app_id: app.to_owned(),
        event_types: vec!["*".to_owned()],
        tenant_scope: None,
        filter: None,
        channel: "webhook".to_owned(),
        destination: Destination {
            address: url.to_owned(),
            template_id: None,
            headers: BTreeMap::new(),
        },
        transform: None,
        retry_schedule_ms: None,
        ordering: Ordering::None,
        digest: None,
        enabled: true,
        created_at: herald_core::time::now_ms(),
        updated_at: herald_core::time::now_ms(),
        version: 1,
    }
}

/// What a receiver does with requests to one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Answers this status.
    Status(u16),
    /// Answers `status` to the first `failures` requests of each `webhook-id`, then 200.
    FailFirst {
        /// Requests to fail per id.
        failures: usize,
        /// The failing status.
        status: u16,
    },
    /// Never answers (until the client gives up).
    Hang,
}

/// One request a receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    /// The path, without the leading `/`.
    pub path: String,
    /// The `webhook-id` header.
    pub webhook_id: String,
    /// Every header, lower-case names.
    pub headers: HashMap<String, String>,
    /// The body.
    pub body: String,
    /// When it arrived.
    pub at: Instant,
    /// The status it was answered with.
    pub status: u16,
}

#[derive(Default)]
struct ReceiverState {
    behaviours: Mutex<HashMap<String, Behaviour>>,
    default: Mutex<Option<Behaviour>>,
    tries: Mutex<HashMap<String, usize>>,
    got: Mutex<Vec<Received>>,
}

/// A local HTTP receiver on 127.0.0.1 with a behaviour per path (200 unless told otherwise)
/// that records every request.
#[derive(Clone)]
pub struct Receiver {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    state: Arc<ReceiverState>,
}

async fn receive(
    State(state): State<Arc<ReceiverState>>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: String,
) -> StatusCode {
    let webhook_id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let behaviour = state
        .behaviours
        .lock()
        .unwrap()
        .get(&path)
        .copied()
        .or(*state.default.lock().unwrap())
        .unwrap_or(Behaviour::Status(200));
    let status = match behaviour {
        Behaviour::Status(status) => status,
        Behaviour::FailFirst { failures, status } => {
            let mut tries = state.tries.lock().unwrap();
            let seen = tries.entry(webhook_id.clone()).or_insert(0);
            *seen += 1;
            if *seen <= failures { status } else { 200 }
        }
        Behaviour::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            200
        }
    };
    state.got.lock().unwrap().push(Received {
        path,
        webhook_id,
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        body,
        at: Instant::now(),
        status,
    });
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

impl Receiver {
    /// Starts a receiver on the current runtime.
    pub async fn start() -> Self {
        let state = Arc::new(ReceiverState::default());
        let app = axum::Router::new()
            .route("/{*path}", axum::routing::post(receive))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding a receiver");
        let address = listener.local_addr().expect("the receiver's address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            base: format!("http://{address}"),
            state,
        }
    }

    /// The URL of `path` on this receiver.
    pub fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base)
    }

    /// Sets what requests to `path` get.
    pub fn set(&self, path: &str, behaviour: Behaviour) {
        self.state
            .behaviours
            .lock()
            .unwrap()
            .insert(path.to_owned(), behaviour);
    }

    /// Sets what requests to paths without their own behaviour get.
    pub fn set_default(&self, behaviour: Behaviour) {
        *self.state.default.lock().unwrap() = Some(behaviour);
    }

    /// Every request so far.
    pub fn received(&self) -> Vec<Received> {
        self.state.got.lock().unwrap().clone()
    }

    /// Waits until `predicate` holds for the requests so far, or `timeout` passes; returns them.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        predicate: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.received();
            if predicate(&got) || Instant::now() >= deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A delivery configuration for tests: this test's prefix, local receivers allowed, short
/// retry tiers and schedule (`schedule_ms`), quick commits.
pub fn test_config(kafka: &TestKafka, schedule_ms: &[u64]) -> DeliverConfig {
    let mut config = DeliverConfig::new(&kafka.config().brokers, "webhook");
    config.topic_prefix = kafka.prefix().to_owned();
    config.retry_tiers_ms = vec![0, 1_000];
    config.retry_schedule_ms = schedule_ms.to_vec();
    config.retry_jitter = 0.0;
    config.partitions = 3;
    config.commit_interval_ms = 50;
    config.breaker_failures = 1000;
    config.webhook.allow_networks = vec!["127.0.0.1/32".to_owned()];
    config.webhook.timeout_ms = 2_000;
    config
}

/// Writes subscriptions to the subscriptions topic, as `herald subscriptions create` does.
pub fn put_subscriptions(kafka: &TestKafka, names: &TopicNames, subs: &[Subscription]) {
    let codec = RecordCodec::subscription();
    let records: Vec<(Vec<u8>, Vec<u8>)> = subs
        .iter()
        .map(|s| {
            (
                s.subscription_id.clone().into_bytes(),
                codec.encode(s).expect("a valid subscription encodes"),
            )
        })
        .collect();
    kafka.produce_bytes(
        &names.subscriptions(),
        records
            .iter()
            .map(|(k, v)| (k.as_slice(), Some(v.as_slice()), &[][..])),
    );
}

/// Writes an app to the apps topic, as `herald apps create` does.
pub fn put_app(kafka: &TestKafka, names: &TopicNames, app: &App) {
    let value = RecordCodec::builtin("dev.herald.App")
        .encode(app)
        .expect("a valid app encodes");
    kafka.produce_bytes(
        &names.apps(),
        [(app.app_id.as_bytes(), Some(value.as_slice()), &[][..])],
    );
}

/// Notification `i` of a run for `sub`, as the router writes it.
pub fn notification(sub: &Subscription, run: &str, i: usize) -> Notification {
    let event_id = format!("{run}-e{i}");
    Notification {
        notification_id: herald_core::notification_id(&event_id, &sub.subscription_id),
        event_id,
        event_type: "order.paid".into(),
        event_source: "/orders".into(),
        event_time: herald_core::time::now_ms(),
        subscription_id: sub.subscription_id.clone(),
        app_id: sub.app_id.clone(),
        channel: sub.channel.clone(),
        destination: sub.destination.address.clone(),
        ordering_key: None,
        payload: format!(r#"{{"type":"order.paid","data":{{"order_id":"o-{i}"}}}}"#),
        content_type: "application/json".into(),
        attempt: 0,
        created_at: herald_core::time::now_ms(),
        traceparent: None,
    }
}

/// Produces notifications to the channel's topic, keyed as the router keys them.
pub fn produce_notifications(kafka: &TestKafka, names: &TopicNames, ns: &[Notification]) {
    let codec = RecordCodec::notification();
    let records: Vec<(Vec<u8>, Vec<u8>, String)> = ns
        .iter()
        .map(|n| {
            (
                n.record_key().into_bytes(),
                encode_notification(&codec, n).expect("a notification encodes"),
                n.channel.clone(),
            )
        })
        .collect();
    let channel = herald_core::topics::ChannelName::parse(&records[0].2).expect("a channel");
    kafka.produce_bytes(
        &names.notify(&channel),
        records
            .iter()
            .map(|(k, v, _)| (k.as_slice(), Some(v.as_slice()), &[][..])),
    );
}

/// A delivery service running in-process on a thread of its own.
pub struct RunningDeliverer {
    service: RunningService<DeliverError>,
    metrics: Arc<crate::DeliverMetrics>,
}

impl RunningDeliverer {
    /// Builds the service (creating its topics) and starts it; returns once it is built.
    pub fn start(config: DeliverConfig) -> Result<Self, DeliverError> {
        let (service, metrics) = RunningService::start(
            "deliver",
            2,
            move || Deliverer::build(config),
            Deliverer::metrics,
            |deliverer, stop, runtime| deliverer.run_until_stopped(stop, runtime),
        )?;
        Ok(Self { service, metrics })
    }

    /// The service's metrics.
    pub fn metrics(&self) -> &crate::DeliverMetrics {
        &self.metrics
    }

    /// Asks the service to stop, waits until it has, and returns how it ended.
    pub fn stop(self) -> Result<(), DeliverError> {
        self.service.stop()
    }
}

/// A Python peer from `tests/interop/` (a provider stand-in, an SMTP server): started with the
/// venv `scripts/test` builds (`HERALD_TEST_PYTHON`), it prints `listening <port>` and then one
/// JSON line per request it checked. Killed when dropped.
pub struct PythonPeer {
    _process: tokio::process::Child,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
}

impl PythonPeer {
    /// Starts `tests/interop/<script>` with `args` and waits until it listens.
    pub async fn start(script: &str, args: &[&str]) -> Self {
        use tokio::io::AsyncBufReadExt;
        let python = std::env::var("HERALD_TEST_PYTHON")
            .expect("HERALD_TEST_PYTHON is not set: run the tests through scripts/test");
        let path = format!(
            "{}/../../tests/interop/{script}",
            env!("CARGO_MANIFEST_DIR")
        );
        let mut process = tokio::process::Command::new(python)
            .arg(&path)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {script}: {e}"));
        let stdout = process.stdout.take().expect("a piped stdout");
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let first = lines
            .next_line()
            .await
            .expect("reading the peer's output")
            .unwrap_or_else(|| panic!("{script} exited before listening"));
        let port = first
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("{script} said {first:?}, not `listening <port>`"));
        Self {
            _process: process,
            lines,
            port,
        }
    }

    /// The next `count` JSON lines, within 30 seconds.
    pub async fn lines(&mut self, count: usize) -> Vec<serde_json::Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        while seen.len() < count {
            seen.push(self.next_before(deadline).await);
        }
        seen
    }

    /// The next JSON line, before `deadline`.
    pub async fn next_before(&mut self, deadline: tokio::time::Instant) -> serde_json::Value {
        let line = tokio::time::timeout_at(deadline, self.lines.next_line())
            .await
            .expect("the peer answered in time")
            .expect("reading the peer's output")
            .expect("the peer kept running");
        serde_json::from_str(&line).expect("the peer prints JSON lines")
    }
}

/// The first dead letter of `channel`, waiting up to 30 seconds for one.
pub async fn first_dead_letter(
    kafka: &TestKafka,
    names: &TopicNames,
    channel: &str,
) -> crate::redrive::DeadLetter {
    let channel = herald_core::topics::ChannelName::parse(channel).expect("a channel name");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(letter) = crate::redrive::list(kafka.config(), names, &channel)
            .expect("reading the dead letters")
            .into_iter()
            .next()
        {
            return letter;
        }
        assert!(Instant::now() < deadline, "nothing dead-lettered in 30 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
