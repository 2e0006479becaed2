//! The pull inbox on the real broker: long-polls that return when a message arrives,
//! unacknowledged messages that come back after the visibility timeout, acknowledged ones
//! that never do (not even after a restart), a live SSE stream, and app keys that see only
//! their own app's messages.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use herald_core::app::App;
use herald_core::topics::TopicNames;
use herald_core::{Notification, Subscription};
use herald_deliver::inbox::{self, InboxConfig, auth::generate_api_key};
use herald_deliver::testkit::{notification, produce_notifications, put_app, webhook_subscription};
use herald_kafka::testkit::TestKafka;
use serde_json::{Value, json};

struct Inbox {
    base: String,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Result<(), String>>,
}

impl Inbox {
    async fn start(kafka: &TestKafka, visibility: Duration) -> Self {
        let mut config = InboxConfig::new(&kafka.config().brokers);
        config.topic_prefix = kafka.prefix().to_owned();
        config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        config.visibility_timeout = visibility;
        config.partitions = 2;
        let stop = Arc::new(AtomicBool::new(false));
        let (bound, address) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(inbox::serve(config, stop.clone(), bound));
        let address = address.await.expect("the inbox listens");
        Self {
            base: format!("http://{address}"),
            stop,
            task,
        }
    }

    async fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap().unwrap();
    }

    async fn get(&self, key: &str, query: &str) -> (u16, Value) {
        let response = reqwest::Client::new()
            .get(format!("{}/v1/inbox?{query}", self.base))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    async fn ack(&self, key: &str, ids: &[&str]) -> Value {
        reqwest::Client::new()
            .post(format!("{}/v1/inbox/ack", self.base))
            .bearer_auth(key)
            .json(&json!({ "ids": ids }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

fn ids(reply: &Value) -> Vec<String> {
    reply["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

/// An app with a fresh API key, written to the apps topic; returns its key.
fn app_with_key(kafka: &TestKafka, names: &TopicNames, app_id: &str) -> String {
    let now = herald_core::time::now_ms();
    let (key, hash) = generate_api_key(now);
    let app = App {
        app_id: app_id.to_owned(),
        owner_tenant: "t-1".into(),
        tenant_scope: None,
        name: app_id.to_owned(),
        api_key_hashes: vec![hash],
        signing_secrets: vec![],
        created_at: now,
        updated_at: now,
        version: 1,
    };
    put_app(kafka, names, &app);
    key
}

fn inbox_subscription(id: &str, app: &str) -> Subscription {
    let mut sub = webhook_subscription(id, app, "inbox");
    sub.channel = "inbox".to_owned();
    sub
}

async fn setup(test: &str) -> (TestKafka, TopicNames) {
    let kafka = TestKafka::new(test);
    let names = TopicNames::with_prefix(kafka.prefix()).unwrap();
    kafka
        .admin()
        .ensure_topics(&[
            herald_kafka::TopicSpec::new(names.apps(), 1).config("cleanup.policy", "compact"),
            // As the router creates it: produced to before the inbox service starts.
            herald_kafka::TopicSpec::new(
                names.notify(&herald_core::topics::ChannelName::parse("inbox").unwrap()),
                2,
            ),
        ])
        .await
        .unwrap();
    (kafka, names)
}

fn produce(kafka: &TestKafka, names: &TopicNames, ns: &[Notification]) {
    produce_notifications(kafka, names, ns);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_polls_wake_on_arrival_unacked_messages_return_and_acked_ones_never_do() {
    let (kafka, names) = setup("inbox-lease").await;
    let key = app_with_key(&kafka, &names, "app-a");
    let sub = inbox_subscription("sub-a", "app-a");
    let inbox = Inbox::start(&kafka, Duration::from_millis(1_500)).await;

    // A long-poll waiting for up to 20 s returns as soon as the message arrives.
    let started = Instant::now();
    let poll = {
        let (base, key) = (inbox.base.clone(), key.clone());
        tokio::spawn(async move {
            let response = reqwest::Client::new()
                .get(format!("{base}/v1/inbox?wait=20"))
                .bearer_auth(key)
                .send()
                .await
                .unwrap();
            (Instant::now(), response.json::<Value>().await.unwrap())
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let m1 = notification(&sub, "lease", 1);
    let produce_kafka = TestKafka::with_brokers(&kafka.config().brokers, "inbox-lease-producer");
    let (names2, n1) = (names.clone(), m1.clone());
    tokio::task::spawn_blocking(move || produce(&produce_kafka, &names2, &[n1]))
        .await
        .unwrap();
    let (answered, reply) = poll.await.unwrap();
    assert_eq!(ids(&reply), [m1.notification_id.as_str()]);
    assert!(
        answered - started < Duration::from_secs(10),
        "the long-poll waited {:?} although a message arrived",
        answered - started
    );
    assert_eq!(reply["messages"][0]["payload"]["data"]["order_id"], "o-1");

    // Leased: hidden now, back after the visibility timeout.
    assert!(ids(&inbox.get(&key, "wait=0").await.1).is_empty());
    tokio::time::sleep(Duration::from_millis(1_700)).await;
    assert_eq!(
        ids(&inbox.get(&key, "").await.1),
        [m1.notification_id.as_str()]
    );

    // Acknowledged: never again, not after the timeout, not after a restart.
    let acked = inbox.ack(&key, &[&m1.notification_id]).await;
    assert_eq!(acked["acked"], 1, "{acked}");
    tokio::time::sleep(Duration::from_millis(1_700)).await;
    assert!(ids(&inbox.get(&key, "").await.1).is_empty());
    inbox.stop().await;
    let inbox = Inbox::start(&kafka, Duration::from_millis(1_500)).await;
    let m2 = notification(&sub, "lease", 2);
    let (kafka2, names2, n2) = (
        TestKafka::with_brokers(&kafka.config().brokers, "inbox-lease-producer-2"),
        names.clone(),
        m2.clone(),
    );
    tokio::task::spawn_blocking(move || produce(&kafka2, &names2, &[n2]))
        .await
        .unwrap();
    let reply = inbox.get(&key, "wait=10").await.1;
    assert_eq!(
        ids(&reply),
        [m2.notification_id.as_str()],
        "only the unacknowledged one"
    );
    inbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apps_key_sees_and_acknowledges_only_its_own_messages() {
    let (kafka, names) = setup("inbox-tenants").await;
    let key_a = app_with_key(&kafka, &names, "app-a");
    let key_b = app_with_key(&kafka, &names, "app-b");
    let a = notification(&inbox_subscription("sub-a", "app-a"), "iso", 1);
    let b = notification(&inbox_subscription("sub-b", "app-b"), "iso", 2);
    let (k, n, ns) = (
        TestKafka::with_brokers(&kafka.config().brokers, "inbox-tenants-producer"),
        names.clone(),
        vec![a.clone(), b.clone()],
    );
    tokio::task::spawn_blocking(move || produce(&k, &n, &ns))
        .await
        .unwrap();
    let inbox = Inbox::start(&kafka, Duration::from_secs(30)).await;

    assert_eq!(
        ids(&inbox.get(&key_b, "wait=10").await.1),
        [b.notification_id.as_str()]
    );
    let refused = inbox.ack(&key_b, &[&a.notification_id]).await;
    assert_eq!(refused["acked"], 0);
    assert_eq!(refused["unknown"], json!([a.notification_id]));
    assert_eq!(
        ids(&inbox.get(&key_a, "").await.1),
        [a.notification_id.as_str()]
    );

    let (status, body) = inbox.get("hk_nothing_here", "").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("unauthorized"))
    );
    let no_key = reqwest::get(format!("{}/v1/inbox", inbox.base))
        .await
        .unwrap();
    assert_eq!(no_key.status().as_u16(), 401);
    let (status, body) = inbox.get(&key_a, "limit=0").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_limit"))
    );
    inbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_delivers_messages_as_they_arrive() {
    let (kafka, names) = setup("inbox-stream").await;
    let key = app_with_key(&kafka, &names, "app-s");
    let inbox = Inbox::start(&kafka, Duration::from_secs(30)).await;
    let mut stream = reqwest::Client::new()
        .get(format!("{}/v1/inbox/stream", inbox.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        stream.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let m = notification(&inbox_subscription("sub-s", "app-s"), "stream", 1);
    let (k, n, ns) = (
        TestKafka::with_brokers(&kafka.config().brokers, "inbox-stream-producer"),
        names.clone(),
        vec![m.clone()],
    );
    let produced_at = Instant::now();
    tokio::task::spawn_blocking(move || produce(&k, &n, &ns))
        .await
        .unwrap();
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !text.contains(&m.notification_id) {
        let chunk = tokio::time::timeout_at(deadline, stream.chunk())
            .await
            .expect("the stream delivered the message in time")
            .unwrap()
            .expect("the stream stayed open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains("event: message"), "{text}");
    assert!(produced_at.elapsed() < Duration::from_secs(10));
    drop(stream);
    inbox.stop().await;
}
