//! The admin API on the real broker and registry: every resource, read-your-writes,
//! pagination, tenant isolation route by route, event ingest with idempotency, test sends,
//! dead letters, replays and the OpenAPI document.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use herald_admin::AdminConfig;
use herald_contract::RecordCodec;
use herald_contract::records::encode_notification;
use herald_contract::subjects::SubjectStrategy;
use herald_core::attempt::{AttemptStatus, DeliveryAttempt};
use herald_core::topics::{ChannelName, TopicNames};
use herald_deliver::secrets::MasterKey;
use herald_deliver::testkit::{Receiver, notification, webhook_subscription};
use herald_kafka::reader::Isolation;
use herald_kafka::testkit::{TestKafka, test_registry};
use reqwest::Method;
use serde_json::{Value, json};

const OPERATOR: &str = "operator-test-token";

struct Admin {
    base: String,
    kafka: TestKafka,
    names: TopicNames,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Result<(), herald_admin::AdminError>>,
    http: reqwest::Client,
}

fn schemas_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas")
}

impl Admin {
    async fn start(test: &str) -> Self {
        let kafka = TestKafka::new(test);
        let names = TopicNames::with_prefix(kafka.prefix()).unwrap();
        let key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let mut config = AdminConfig::new(
            &kafka.config().brokers,
            MasterKey::parse(&key).unwrap(),
            OPERATOR,
        );
        config.kafka = kafka.config().clone();
        config.topic_prefix = kafka.prefix().to_owned();
        config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        config.registry = Some(test_registry());
        config.schemas = Some(schemas_dir());
        config.strategy = SubjectStrategy::RecordName;
        config.webhook.allow_networks = vec!["127.0.0.1/32".to_owned()];
        config.webhook.timeout_ms = 2_000;
        let stop = Arc::new(AtomicBool::new(false));
        let (bound, address) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(herald_admin::serve(config, stop.clone(), bound));
        let address = address.await.expect("the admin API listens");
        Self {
            base: format!("http://{address}"),
            kafka,
            names,
            stop,
            task,
            http: reqwest::Client::new(),
        }
    }

    async fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap().unwrap();
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    async fn get(&self, path: &str, key: &str) -> (u16, Value) {
        self.call(Method::GET, path, Some(key), None).await
    }

    async fn post(&self, path: &str, key: &str, body: Value) -> (u16, Value) {
        self.call(Method::POST, path, Some(key), Some(body)).await
    }

    /// Writes attempt records to `herald.attempts`, as the delivery services do.
    fn put_attempts(&self, attempts: &[DeliveryAttempt]) {
        let codec = RecordCodec::builtin("dev.herald.DeliveryAttempt");
        let records: Vec<(Vec<u8>, Vec<u8>)> = attempts
            .iter()
            .map(|a| {
                (
                    a.notification_id.clone().into_bytes(),
                    codec.encode(a).unwrap(),
                )
            })
            .collect();
        self.kafka.produce_bytes(
            &self.names.attempts(),
            records
                .iter()
                .map(|(k, v)| (k.as_slice(), Some(v.as_slice()), &[][..])),
        );
    }

    /// Creates an app as the operator; returns its API key.
    async fn app(&self, id: &str) -> String {
        let (status, created) = self
            .post(
                "/v1/apps",
                OPERATOR,
                json!({"app_id": id, "name": format!("App {id}")}),
            )
            .await;
        assert_eq!(status, 201, "{created}");
        created["api_key"].as_str().unwrap().to_owned()
    }

    async fn subscription(&self, key: &str, id: &str, url: &str) -> Value {
        let (status, sub) = self
            .post(
                "/v1/subscriptions",
                key,
                json!({"subscription_id": id, "event_types": ["order.*"], "channel": "webhook",
                       "destination": {"address": url}}),
            )
            .await;
        assert_eq!(status, 201, "{sub}");
        sub
    }

    /// Polls `path` until `done` holds for the answer, or 20 s pass.
    async fn poll(&self, path: &str, key: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (status, value) = self.get(path, key).await;
            if status == 200 && done(&value) || Instant::now() > deadline {
                return value;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Registers `order.paid` under its record name, the subject the admin's ingest uses here.
async fn register_order_paid() {
    let registry = herald_contract::RegistryClient::new(&herald_contract::RegistryConfig::new(
        test_registry(),
    ))
    .unwrap();
    let catalog = herald_contract::Catalog::load_dir(&schemas_dir()).unwrap();
    let paid = catalog.by_event_type("order.paid").unwrap();
    registry
        .register(&paid.full_name, &paid.text)
        .await
        .unwrap();
}

fn ids(page: &Value, field: &str) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v[field].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_keys_and_secrets_read_their_writes() {
    let admin = Admin::start("admin-apps").await;
    assert_eq!(admin.call(Method::GET, "/v1/apps", None, None).await.0, 401);
    assert_eq!(admin.get("/v1/apps", "hk_nope_nope").await.0, 401);

    let (status, created) = admin
        .post(
            "/v1/apps",
            OPERATOR,
            json!({"app_id": "shop-1", "name": "Shop"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert!(
        created["signing_secret"]
            .as_str()
            .unwrap()
            .starts_with("whsec_")
    );
    let key = created["api_key"].as_str().unwrap().to_owned();
    // Read-your-writes: the app and its key work at once.
    let (status, app) = admin.get("/v1/apps/shop-1", &key).await;
    assert_eq!(status, 200, "{app}");
    assert_eq!(app["version"], 1);
    assert!(
        app.get("api_key_hashes").is_none() && app["api_keys"][0].get("hash").is_none(),
        "no hash leaves: {app}"
    );

    assert_eq!(
        admin
            .post(
                "/v1/apps",
                OPERATOR,
                json!({"app_id": "shop-1", "name": "Again"})
            )
            .await
            .0,
        409
    );
    let (status, refused) = admin
        .post(
            "/v1/apps",
            OPERATOR,
            json!({"app_id": "no spaces", "name": "x"}),
        )
        .await;
    assert_eq!(
        (status, refused["field"].as_str()),
        (422, Some("app_id")),
        "{refused}"
    );
    let (status, refused) = admin
        .post("/v1/apps", OPERATOR, json!({"app_id": "x", "nme": "typo"}))
        .await;
    assert_eq!(status, 422, "{refused}");
    assert!(
        refused["message"].as_str().unwrap().contains("nme"),
        "{refused}"
    );
    assert_eq!(
        admin
            .post("/v1/apps", &key, json!({"name": "by an app"}))
            .await
            .0,
        403
    );

    let (status, issued) = admin
        .post("/v1/apps/shop-1/api-keys", &key, json!({}))
        .await;
    assert_eq!(status, 201, "{issued}");
    let second = issued["api_key"].as_str().unwrap().to_owned();
    assert_eq!(admin.get("/v1/apps/shop-1", &second).await.0, 200);
    let first_id = app["api_keys"][0]["key_id"].as_str().unwrap();
    let (status, revoked) = admin
        .call(
            Method::DELETE,
            &format!("/v1/apps/shop-1/api-keys/{first_id}"),
            Some(&second),
            None,
        )
        .await;
    assert_eq!(status, 200, "{revoked}");
    assert_eq!(
        admin.get("/v1/apps/shop-1", &key).await.0,
        401,
        "a revoked key stops at once"
    );

    let (status, rotated) = admin
        .post(
            "/v1/apps/shop-1/secrets/rotate",
            &second,
            json!({"overlap_seconds": 3600}),
        )
        .await;
    assert_eq!(status, 201, "{rotated}");
    let (_, app) = admin.get("/v1/apps/shop-1", OPERATOR).await;
    let secrets = app["signing_secrets"].as_array().unwrap();
    assert_eq!(secrets.len(), 2, "{app}");
    assert_eq!(secrets[0]["expires_at"], rotated["previous_expire_at"]);
    assert!(secrets[1]["expires_at"].is_null());
    assert_eq!(app["version"], 4);

    // Every change is in the audit trail.
    let audit = admin.kafka.read_topic(
        &admin.names.audit(),
        Isolation::ReadCommitted,
        4,
        Duration::from_secs(20),
    );
    let actions: Vec<String> = audit
        .iter()
        .map(|r| {
            let v: Value = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
            format!(
                "{} {} {}",
                v["actor"].as_str().unwrap(),
                v["action"].as_str().unwrap(),
                v["id"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            "operator create shop-1",
            "app:shop-1 issue_key shop-1",
            "app:shop-1 revoke_key shop-1",
            "app:shop-1 rotate_secret shop-1"
        ]
    );
    admin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_crud_with_pagination_and_clear_refusals() {
    let admin = Admin::start("admin-subs").await;
    let key = admin.app("a").await;
    for i in 0..23 {
        let sub = admin
            .subscription(&key, &format!("s{i:02}"), "https://example.com/hook")
            .await;
        assert_eq!(sub["app_id"], "a");
        // Read-your-writes: every create is listed at once.
        let (status, got) = admin.get(&format!("/v1/subscriptions/s{i:02}"), &key).await;
        assert_eq!(status, 200, "{got}");
    }
    let mut seen = Vec::new();
    let mut path = "/v1/subscriptions?limit=10".to_owned();
    loop {
        let (status, page) = admin.get(&path, &key).await;
        assert_eq!(status, 200, "{page}");
        assert!(page["data"].as_array().unwrap().len() <= 10);
        seen.extend(ids(&page, "subscription_id"));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/subscriptions?limit=10&cursor={cursor}"),
            None => break,
        }
    }
    let want: Vec<String> = (0..23).map(|i| format!("s{i:02}")).collect();
    assert_eq!(seen, want);
    assert_eq!(admin.get("/v1/subscriptions?limit=0", &key).await.0, 422);

    let (status, replaced) = admin
        .call(Method::PUT, "/v1/subscriptions/s00", Some(&key), Some(json!({
            "event_types": ["order.paid"], "channel": "webhook", "filter": "data.currency == \"CNY\"",
            "destination": {"address": "https://example.com/v2"}})))
        .await;
    assert_eq!(status, 200, "{replaced}");
    assert_eq!(replaced["version"], 2);
    assert_eq!(
        admin.get("/v1/subscriptions/s00", &key).await.1["destination"]["address"],
        "https://example.com/v2"
    );
    let (_, disabled) = admin
        .post("/v1/subscriptions/s00/disable", &key, json!({}))
        .await;
    assert_eq!(
        (disabled["enabled"].as_bool(), disabled["version"].as_i64()),
        (Some(false), Some(3))
    );
    assert_eq!(
        admin.get("/v1/subscriptions/s00", &key).await.1["enabled"],
        false
    );
    let (_, enabled) = admin
        .post("/v1/subscriptions/s00/enable", &key, json!({}))
        .await;
    assert_eq!(enabled["enabled"], true);
    assert_eq!(
        admin
            .call(Method::DELETE, "/v1/subscriptions/s01", Some(&key), None)
            .await
            .0,
        204
    );
    assert_eq!(
        admin.get("/v1/subscriptions/s01", &key).await.0,
        404,
        "a delete is read back at once"
    );

    // Refusals name the field at fault.
    let base = json!({"event_types": ["order.paid"], "channel": "webhook", "destination": {"address": "https://example.com/"}});
    let with = |field: &str, value: Value| {
        let mut body = base.clone();
        body[field] = value;
        body
    };
    for (body, field) in [
        (with("filter", json!("data.amount >")), "filter"),
        (with("event_types", json!(["order paid"])), "event_types"),
        (with("channel", json!("pigeon")), "channel"),
        (
            with("destination", json!({"adress": "typo"})),
            "destination",
        ),
        (with("app_id", json!("someone-else")), ""),
    ] {
        let (status, refused) = admin.post("/v1/subscriptions", &key, body.clone()).await;
        if field.is_empty() {
            assert_eq!(status, 403, "{refused}");
            continue;
        }
        assert_eq!(status, 422, "{body} → {refused}");
        assert!(
            refused["field"].as_str().unwrap().starts_with(field),
            "{body} → {refused}"
        );
        assert!(!refused["message"].as_str().unwrap().is_empty());
    }
    let (status, refused) = admin
        .post("/v1/subscriptions", OPERATOR, base.clone())
        .await;
    assert_eq!(
        (status, refused["field"].as_str()),
        (422, Some("app_id")),
        "{refused}"
    );
    let not_json = admin
        .http
        .post(format!("{}/v1/subscriptions", admin.base))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status().as_u16(), 400);
    admin.stop().await;
}

fn attempt(n: usize, app: &str, sub: &str, status: AttemptStatus) -> DeliveryAttempt {
    DeliveryAttempt {
        attempt_id: DeliveryAttempt::id_for(&format!("n-{app}-{n}"), 1),
        notification_id: format!("n-{app}-{n}"),
        subscription_id: sub.to_owned(),
        app_id: app.to_owned(),
        channel: "webhook".to_owned(),
        attempt: 1,
        status,
        started_at: herald_core::time::now_ms(),
        latency_ms: 5,
        response_code: Some(if status == AttemptStatus::Succeeded {
            200
        } else {
            500
        }),
        response_body: Some("ok".to_owned()),
        error: None,
        next_attempt_at: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_keeps_app_b_away_from_app_a() {
    let admin = Admin::start("admin-tenants").await;
    let key_a = admin.app("a").await;
    let key_b = admin.app("b").await;
    admin
        .subscription(&key_a, "sub-a", "https://example.com/a")
        .await;
    admin
        .subscription(&key_b, "sub-b", "https://example.com/b")
        .await;
    // Delivery log and dead letters of both apps.
    let attempts: Vec<DeliveryAttempt> = (0..4)
        .flat_map(|n| {
            [
                attempt(n, "a", "sub-a", AttemptStatus::Succeeded),
                attempt(n, "b", "sub-b", AttemptStatus::DeadLettered),
            ]
        })
        .collect();
    admin.put_attempts(&attempts);
    let webhook = ChannelName::parse("webhook").unwrap();
    let dlq = admin.names.notify_dlq(&webhook);
    assert_eq!(admin.kafka.create_topic("notify.webhook.dlq", 1).await, dlq);
    admin.kafka.create_topic("notify.webhook", 1).await;
    let n_codec = RecordCodec::notification();
    let headers = vec![
        ("herald-error-kind".to_owned(), "exhausted".to_owned()),
        ("herald-error".to_owned(), "HTTP 500".to_owned()),
    ];
    let letters: Vec<(Vec<u8>, Vec<u8>)> = [("sub-a", "a"), ("sub-b", "b")]
        .iter()
        .map(|(sub, app)| {
            let n = notification(
                &webhook_subscription(sub, app, "https://example.com/"),
                "tenants",
                1,
            );
            (
                n.record_key().into_bytes(),
                encode_notification(&n_codec, &n).unwrap(),
            )
        })
        .collect();
    admin.kafka.produce_bytes(
        &dlq,
        letters
            .iter()
            .map(|(k, v)| (k.as_slice(), Some(v.as_slice()), headers.as_slice())),
    );
    let b_letter = herald_core::notification_id("tenants-e1", "sub-b");
    let all = admin
        .poll("/v1/deliveries", OPERATOR, |v| {
            v["data"].as_array().unwrap().len() == 8
        })
        .await;
    assert_eq!(all["data"].as_array().unwrap().len(), 8, "{all}");

    // Reads: B's things are invisible to A (404 for single ones, absent from lists).
    for path in [
        "/v1/apps/b",
        "/v1/subscriptions/sub-b",
        &format!("/v1/dead-letters/webhook/{b_letter}"),
    ] {
        let (status, body) = admin.get(path, &key_a).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(admin.get(path, OPERATOR).await.0, 200, "{path} exists");
    }
    for path in ["/v1/subscriptions?app_id=b", "/v1/deliveries?app_id=b"] {
        assert_eq!(admin.get(path, &key_a).await.0, 403, "{path}");
    }
    assert_eq!(ids(&admin.get("/v1/apps", &key_a).await.1, "app_id"), ["a"]);
    assert_eq!(
        ids(
            &admin.get("/v1/subscriptions", &key_a).await.1,
            "subscription_id"
        ),
        ["sub-a"]
    );
    let deliveries = admin.get("/v1/deliveries", &key_a).await.1;
    assert!(
        deliveries["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["app_id"] == "a")
            && ids(&deliveries, "app_id").len() == 4,
        "{deliveries}"
    );
    let letters = admin.get("/v1/dead-letters/webhook", &key_a).await.1;
    let apps: Vec<&str> = letters["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["notification"]["app_id"].as_str().unwrap())
        .collect();
    assert_eq!(apps, ["a"]);

    // Changes: nothing of B's can be touched with A's key.
    let sub_body = json!({"event_types": ["*"], "channel": "webhook", "destination": {"address": "https://evil.example/"}});
    let writes: Vec<(Method, String, Option<Value>)> = vec![
        (
            Method::PUT,
            "/v1/subscriptions/sub-b".into(),
            Some(sub_body.clone()),
        ),
        (Method::DELETE, "/v1/subscriptions/sub-b".into(), None),
        (
            Method::POST,
            "/v1/subscriptions/sub-b/disable".into(),
            Some(json!({})),
        ),
        (
            Method::POST,
            "/v1/subscriptions/sub-b/enable".into(),
            Some(json!({})),
        ),
        (
            Method::POST,
            "/v1/subscriptions/sub-b/test".into(),
            Some(json!({})),
        ),
        (Method::POST, "/v1/apps/b/api-keys".into(), Some(json!({}))),
        (Method::DELETE, "/v1/apps/b/api-keys/any".into(), None),
        (
            Method::POST,
            "/v1/apps/b/secrets/rotate".into(),
            Some(json!({})),
        ),
        (
            Method::POST,
            "/v1/replays".into(),
            Some(json!({"subscription_id": "sub-b", "topic": "events.order",
            "from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z"})),
        ),
        (
            Method::POST,
            "/v1/subscriptions".into(),
            Some(
                json!({"app_id": "b", "event_types": ["*"], "channel": "webhook",
            "destination": {"address": "https://evil.example/"}}),
            ),
        ),
        (
            Method::POST,
            "/v1/events".into(),
            Some(json!({"type": "order.paid", "data": {}})),
        ),
        (Method::POST, "/v1/apps".into(), Some(json!({"name": "x"}))),
    ];
    for (method, path, body) in writes {
        let (status, answer) = admin.call(method.clone(), &path, Some(&key_a), body).await;
        assert!(
            status == 403 || status == 404,
            "{method} {path} answered {status}: {answer}"
        );
    }
    // A redrive with A's key leaves B's dead letter where it is.
    let (_, redriven) = admin
        .post("/v1/dead-letters/webhook/redrive", &key_a, json!({}))
        .await;
    assert_eq!(redriven["redriven"], 1, "only A's own letter: {redriven}");
    let back = admin.kafka.read_topic(
        &admin.names.notify(&webhook),
        Isolation::ReadCommitted,
        1,
        Duration::from_secs(20),
    );
    let back: Vec<String> = back
        .iter()
        .map(|r| {
            n_codec
                .decode::<herald_core::Notification>(r.value.as_deref().unwrap())
                .unwrap()
                .app_id
        })
        .collect();
    assert_eq!(back, ["a"]);
    let (_, sub_b) = admin.get("/v1/subscriptions/sub-b", &key_b).await;
    assert_eq!(
        (sub_b["version"].as_i64(), sub_b["enabled"].as_bool()),
        (Some(1), Some(true)),
        "B's subscription untouched"
    );
    assert_eq!(
        admin.get("/v1/apps/b", &key_b).await.1["version"],
        1,
        "B's app untouched"
    );
    admin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_delivery_log_filters_and_pages() {
    let admin = Admin::start("admin-log").await;
    let attempts: Vec<DeliveryAttempt> = (0..30)
        .map(|n| {
            let status = if n % 3 == 0 {
                AttemptStatus::RetryScheduled
            } else {
                AttemptStatus::Succeeded
            };
            attempt(n, "a", if n < 10 { "s1" } else { "s2" }, status)
        })
        .collect();
    admin.put_attempts(&attempts);
    admin
        .poll("/v1/deliveries?limit=1000", OPERATOR, |v| {
            v["data"].as_array().unwrap().len() == 30
        })
        .await;
    let mut seen = Vec::new();
    let mut path = "/v1/deliveries?subscription_id=s2&limit=7".to_owned();
    loop {
        let (status, page) = admin.get(&path, OPERATOR).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(ids(&page, "notification_id"));
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/deliveries?subscription_id=s2&limit=7&cursor={c}"),
            None => break,
        }
    }
    seen.sort();
    let mut want: Vec<String> = (10..30).map(|n| format!("n-a-{n}")).collect();
    want.sort();
    assert_eq!(seen, want, "every attempt of s2 once");
    let retries = admin
        .get("/v1/deliveries?status=RETRY_SCHEDULED&limit=1000", OPERATOR)
        .await
        .1;
    assert_eq!(retries["data"].as_array().unwrap().len(), 10);
    let future = admin
        .get("/v1/deliveries?since=2100-01-01T00:00:00Z", OPERATOR)
        .await
        .1;
    assert!(future["data"].as_array().unwrap().is_empty());
    let (status, refused) = admin.get("/v1/deliveries?since=yesterday", OPERATOR).await;
    assert_eq!((status, refused["field"].as_str()), (422, Some("since")));
    admin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_validates_encodes_and_produces_once_per_idempotency_key() {
    let admin = Admin::start("admin-ingest").await;
    register_order_paid().await;
    let topic = admin.kafka.create_topic("events", 1).await;
    let (status, types) = admin.get("/v1/event-types", OPERATOR).await;
    assert_eq!(status, 200);
    let listed: Vec<&str> = types
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        listed,
        [
            "order.completed",
            "order.created",
            "order.paid",
            "user.registered"
        ]
    );
    let (_, paid_type) = admin.get("/v1/event-types/order.paid", OPERATOR).await;
    let example = paid_type["example"].clone();
    assert!(
        paid_type["json_schema"]["required"]
            .as_array()
            .unwrap()
            .contains(&json!("order_id"))
    );

    let body = json!({"type": "order.paid", "topic": topic, "key": "o-1", "tenant": "m-1", "data": example});
    let send = |key: &'static str, body: Value| {
        let request = admin
            .http
            .post(format!("{}/v1/events", admin.base))
            .bearer_auth(OPERATOR)
            .header("idempotency-key", key)
            .json(&body);
        async move {
            let response = request.send().await.unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };
    let (status, first) = send("k-1", body.clone()).await;
    assert_eq!(status, 202, "{first}");
    let (status, again) = send("k-1", body.clone()).await;
    assert_eq!(status, 202);
    assert_eq!(
        (
            again["id"].clone(),
            again["offset"].clone(),
            again["replayed"].clone()
        ),
        (first["id"].clone(), first["offset"].clone(), json!(true))
    );
    let (_, other) = send("k-2", body.clone()).await;
    assert_ne!(other["id"], first["id"]);
    let records =
        admin
            .kafka
            .read_topic(&topic, Isolation::ReadCommitted, 2, Duration::from_secs(20));
    assert_eq!(records.len(), 2, "the retried POST produced nothing");
    let ce_ids: Vec<String> = records
        .iter()
        .map(|r| String::from_utf8(r.header("ce_id").unwrap().to_vec()).unwrap())
        .collect();
    assert_eq!(
        ce_ids,
        [first["id"].as_str().unwrap(), other["id"].as_str().unwrap()]
    );
    assert_eq!(records[0].header("ce_tenant"), Some(&b"m-1"[..]));
    assert_eq!(
        records[0].value.as_deref().unwrap()[0],
        0,
        "Confluent framing"
    );

    let mut bad = body.clone();
    bad["data"]["amount"] = json!("a lot");
    let (status, refused) = admin.post("/v1/events", OPERATOR, bad).await;
    assert_eq!(
        (status, refused["field"].as_str()),
        (422, Some("data.amount")),
        "{refused}"
    );
    let mut missing = body.clone();
    missing["data"].as_object_mut().unwrap().remove("order_id");
    let (status, refused) = admin.post("/v1/events", OPERATOR, missing).await;
    assert_eq!(status, 422, "{refused}");
    assert!(
        refused["field"].as_str().unwrap().starts_with("data"),
        "{refused}"
    );
    let (status, refused) = admin
        .post(
            "/v1/events",
            OPERATOR,
            json!({"type": "order.lost", "data": {}}),
        )
        .await;
    assert_eq!((status, refused["field"].as_str()), (422, Some("type")));
    admin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_send_reaches_the_receiver_signed_and_reports_its_answer() {
    let admin = Admin::start("admin-test-send").await;
    let receiver = Receiver::start().await;
    let key = admin.app("a").await;
    admin.subscription(&key, "s", &receiver.url("hook")).await;
    let (status, result) = admin
        .post(
            "/v1/subscriptions/s/test",
            &key,
            json!({"event_type": "order.paid"}),
        )
        .await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(
        (result["outcome"].as_str(), result["response_code"].as_i64()),
        (Some("delivered"), Some(200)),
        "{result}"
    );
    let got = receiver.received();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].webhook_id,
        result["notification_id"].as_str().unwrap()
    );
    assert!(
        got[0].headers["webhook-signature"].starts_with("v1,"),
        "signed with the app's secret"
    );
    let body: Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(body["type"], "order.paid");
    assert!(
        body["data"]["order_id"].is_string(),
        "the catalogue's example: {body}"
    );

    receiver.set("hook", herald_deliver::testkit::Behaviour::Status(503));
    let (_, result) = admin
        .post("/v1/subscriptions/s/test", &key, json!({}))
        .await;
    assert_eq!(
        (result["outcome"].as_str(), result["response_code"].as_i64()),
        (Some("retryable"), Some(503)),
        "{result}"
    );
    admin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_covers_every_route() {
    let admin = Admin::start("admin-openapi").await;
    let (status, doc) = admin.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for path in [
        "/v1/apps",
        "/v1/apps/{app_id}",
        "/v1/apps/{app_id}/api-keys",
        "/v1/apps/{app_id}/api-keys/{key_id}",
        "/v1/apps/{app_id}/secrets/rotate",
        "/v1/subscriptions",
        "/v1/subscriptions/{subscription_id}",
        "/v1/subscriptions/{subscription_id}/enable",
        "/v1/subscriptions/{subscription_id}/disable",
        "/v1/subscriptions/{subscription_id}/test",
        "/v1/event-types",
        "/v1/event-types/{event_type}",
        "/v1/deliveries",
        "/v1/dead-letters/{channel}",
        "/v1/dead-letters/{channel}/{notification_id}",
        "/v1/dead-letters/{channel}/redrive",
        "/v1/events",
        "/v1/replays",
        "/v1/replays/{replay_id}",
    ] {
        assert!(paths.contains(&path), "{path} missing from {paths:?}");
    }
    assert!(doc["components"]["schemas"]["Subscription"].is_object());
    assert_eq!(admin.call(Method::GET, "/healthz", None, None).await.0, 200);
    admin.stop().await;
}

/// The console in Debian's Chromium (tests/browser/console.mjs, playwright-core): sign in,
/// create a subscription, test-send to a local receiver, see it in the delivery log, redrive a
/// dead letter — which a running delivery service then delivers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_browser_creates_tests_logs_and_redrives() {
    let admin = Admin::start("admin-console").await;
    let receiver = Receiver::start().await;
    let key = admin.app("shop").await;
    // A dead letter of the app's, for the browser to redrive.
    let dead_sub = admin
        .subscription(&key, "dead-sub", &receiver.url("dead"))
        .await;
    assert_eq!(dead_sub["app_id"], "shop");
    let webhook = ChannelName::parse("webhook").unwrap();
    let lost = notification(
        &webhook_subscription("dead-sub", "shop", &receiver.url("dead")),
        "console",
        1,
    );
    let value = encode_notification(&RecordCodec::notification(), &lost).unwrap();
    let headers = vec![
        ("herald-error-kind".to_owned(), "exhausted".to_owned()),
        ("herald-error".to_owned(), "HTTP 503".to_owned()),
    ];
    // The delivery service creates the channel's topics, the dead-letter topic among them.
    let deliverer = herald_deliver::testkit::RunningDeliverer::start(
        herald_deliver::testkit::test_config(&admin.kafka, &[100]),
    )
    .unwrap();
    admin.kafka.produce_bytes(
        &admin.names.notify_dlq(&webhook),
        [(
            lost.record_key().as_bytes(),
            Some(value.as_slice()),
            headers.as_slice(),
        )],
    );

    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let shots = repo.join("target/browser");
    std::fs::create_dir_all(&shots).unwrap();
    let output = tokio::process::Command::new("node")
        .arg(repo.join("tests/browser/console.mjs"))
        .env("HERALD_CONSOLE_URL", &admin.base)
        .env("HERALD_APP_KEY", &key)
        .env("HERALD_RECEIVER_URL", receiver.url("console"))
        .env("HERALD_DEAD_LETTER", &lost.notification_id)
        .env("HERALD_SCREENSHOTS", &shots)
        .output()
        .await
        .expect("node runs (scripts/test installs tests/browser)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the browser run failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(report["ok"], true, "{report}");

    // What the browser saw happened: the test send reached the receiver, and the logged
    // delivery is that request.
    let got = receiver
        .wait_until(Duration::from_secs(20), |r| {
            r.iter().any(|r| r.path == "dead")
        })
        .await;
    let console: Vec<_> = got.iter().filter(|r| r.path == "console").collect();
    assert_eq!(console.len(), 1, "one test send");
    assert_eq!(
        report["loggedNotification"].as_str(),
        Some(console[0].webhook_id.as_str())
    );
    // The redriven dead letter was delivered by the delivery service, under its own id.
    let redriven: Vec<_> = got.iter().filter(|r| r.path == "dead").collect();
    assert_eq!(redriven.len(), 1, "the dead letter delivered once");
    assert_eq!(redriven[0].webhook_id, lost.notification_id);
    for step in [
        "1-signed-in",
        "2-subscription-created",
        "2b-subscription-edited",
        "3-test-sent",
        "4-delivery-log",
        "5-dead-letters",
        "6-redriven",
    ] {
        let shot = shots.join(format!("{step}.png"));
        assert!(
            std::fs::metadata(&shot)
                .map(|m| m.len() > 1000)
                .unwrap_or(false),
            "{} missing",
            shot.display()
        );
    }
    // The edit made in the browser is stored: the filter, and a new version.
    let (_, edited) = admin.get("/v1/subscriptions/console-sub", &key).await;
    assert_eq!(edited["filter"], "data.currency == \"CNY\"", "{edited}");
    assert_eq!(edited["version"], 2, "{edited}");
    deliverer.stop().unwrap();
    admin.stop().await;
}

/// schemathesis (PyPI) generates requests from `/openapi.json` — valid and invalid ones, a
/// bounded number per operation — and checks every answer: no 5xx, and status, content type
/// and body as the document says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_answer_off_the_document() {
    let schemathesis = std::env::var("HERALD_TEST_SCHEMATHESIS").expect(
        "HERALD_TEST_SCHEMATHESIS names the schemathesis executable; scripts/test sets it up",
    );
    let admin = Admin::start("admin-schemathesis").await;
    let key = admin.app("fuzzed").await;
    admin
        .subscription(&key, "sub-1", "https://example.com/hook")
        .await;
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let reports = repo.join("target/schemathesis");
    let output = tokio::process::Command::new(schemathesis)
        .args(["run", &format!("{}/openapi.json", admin.base), "--url", &admin.base])
        .args(["--header", &format!("Authorization: Bearer {OPERATOR}")])
        .args(["--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"])
        .args(["--max-examples", "12", "--seed", "20261204", "--generation-database", "none"])
        // One worker: with several, hypothesis parses lambdas with `ast` from several threads,
        // which CPython 3.11 does not survive ("AST constructor recursion depth mismatch").
        .args(["--workers", "1", "--request-timeout", "30", "--no-color"])
        .args(["--report", "junit", "--report-dir"])
        .arg(&reports)
        .output()
        .await
        .expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!("{stdout}");
    // It did test every operation of the document.
    let tested = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("Tested: "))
        .and_then(|n| n.trim().parse::<usize>().ok());
    let operations = admin.call(Method::GET, "/openapi.json", None, None).await.1["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum::<usize>();
    assert_eq!(tested, Some(operations), "{stdout}");
    admin.stop().await;
}

/// A replay started over the API routes the window again for one subscription and reports
/// its progress until it completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_routes_a_window_again_for_one_subscription() {
    let admin = Admin::start("admin-replay").await;
    register_order_paid().await;
    // An event topic outside Herald's prefix, as upstream topics are.
    let topic = format!("events.{}", admin.kafka.prefix());
    admin
        .kafka
        .admin()
        .ensure_topics(&[herald_kafka::TopicSpec::new(&topic, 2)])
        .await
        .unwrap();
    let webhook = ChannelName::parse("webhook").unwrap();
    admin.kafka.create_topic("notify.webhook", 2).await;
    let key = admin.app("a").await;
    admin
        .subscription(&key, "replayed", "https://example.com/a")
        .await;
    admin
        .subscription(&key, "other", "https://example.com/b")
        .await;
    let (_, paid_type) = admin.get("/v1/event-types/order.paid", OPERATOR).await;
    let from = chrono::Utc::now();
    let mut ids = Vec::new();
    for i in 0..5 {
        let body = json!({"type": "order.paid", "topic": topic, "key": format!("o-{i}"), "data": paid_type["example"]});
        let (status, produced) = admin.post("/v1/events", OPERATOR, body).await;
        assert_eq!(status, 202, "{produced}");
        ids.push(produced["id"].as_str().unwrap().to_owned());
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let to = chrono::Utc::now();
    let window = json!({"subscription_id": "replayed", "topic": topic,
        "from": from.to_rfc3339(), "to": to.to_rfc3339()});
    let (status, started) = admin.post("/v1/replays", &key, window).await;
    assert_eq!(status, 202, "{started}");
    let path = format!("/v1/replays/{}", started["replay_id"].as_str().unwrap());
    let done = admin.poll(&path, &key, |r| r["state"] != "running").await;
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(
        (
            done["read"].as_u64(),
            done["total"].as_u64(),
            done["notifications"].as_u64()
        ),
        (Some(5), Some(5), Some(5)),
        "{done}"
    );
    let codec = RecordCodec::notification();
    let routed: Vec<herald_core::Notification> = admin
        .kafka
        .read_topic(
            &admin.names.notify(&webhook),
            Isolation::ReadCommitted,
            5,
            Duration::from_secs(20),
        )
        .iter()
        .map(|r| codec.decode(r.value.as_deref().unwrap()).unwrap())
        .collect();
    let mut events: Vec<&str> = routed.iter().map(|n| n.event_id.as_str()).collect();
    events.sort();
    ids.sort();
    assert_eq!(events, ids.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        routed.iter().all(|n| n.subscription_id == "replayed"),
        "only the replayed subscription"
    );
    admin.stop().await;
}
