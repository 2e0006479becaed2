//! Signatures as a receiver nobody here wrote checks them: a Python receiver verifies every
//! request with the official `standardwebhooks` library, holding only the app's newest secret
//! while the app is mid-rotation (old and new secret both active).

use std::process::Stdio;
use std::time::Duration;

use base64::Engine;
use herald_core::app::App;
use herald_core::topics::TopicNames;
use herald_deliver::secrets::{MasterKey, generate_whsec};
use herald_deliver::testkit::{
    RunningDeliverer, notification, produce_notifications, put_app, put_subscriptions, test_config,
    webhook_subscription,
};
use herald_kafka::testkit::TestKafka;
use tokio::io::{AsyncBufReadExt, BufReader};

fn python() -> String {
    std::env::var("HERALD_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("HERALD_TEST_PYTHON is not set: run the tests through scripts/test, which builds the venv with standardwebhooks")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_verify_with_the_official_standardwebhooks_library_during_a_rotation() {
    let kafka = TestKafka::new("signatures");
    let names = TopicNames::with_prefix(kafka.prefix()).unwrap();
    let key =
        MasterKey::parse(&base64::engine::general_purpose::STANDARD.encode(uuid_bytes())).unwrap();
    let old_secret = generate_whsec();
    let new_secret = generate_whsec();

    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/interop/webhook_receiver.py"
    );
    let mut receiver = tokio::process::Command::new(python())
        .arg(script)
        .arg(&new_secret)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("starting the Python receiver");
    let mut lines = BufReader::new(receiver.stdout.take().unwrap()).lines();
    let first = lines
        .next_line()
        .await
        .unwrap()
        .expect("the receiver's port");
    let port = first.strip_prefix("listening ").expect("listening <port>");
    let url = format!("http://127.0.0.1:{port}/hooks");

    let now = herald_core::time::now_ms();
    let app = App {
        app_id: "app-signed".into(),
        owner_tenant: "t-1".into(),
        tenant_scope: None,
        name: "Signed app".into(),
        api_key_hashes: vec![],
        signing_secrets: vec![
            key.encrypt("old", &old_secret, now - 1000, Some(now + 3_600_000)),
            key.encrypt("new", &new_secret, now, None),
        ],
        created_at: now,
        updated_at: now,
        version: 1,
    };
    let mut config = test_config(&kafka, &[200]);
    config.master_key = Some(key);
    herald_deliver::ensure_topics(&config).await.unwrap();
    put_app(&kafka, &names, &app);
    let sub = webhook_subscription("sub-signed", "app-signed", &url);
    put_subscriptions(&kafka, &names, std::slice::from_ref(&sub));
    let service = RunningDeliverer::start(config).unwrap();
    let ns: Vec<_> = (0..5).map(|i| notification(&sub, "sig", i)).collect();
    produce_notifications(&kafka, &names, &ns);

    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while seen.len() < ns.len() {
        let line = tokio::time::timeout_at(deadline, lines.next_line())
            .await
            .expect("the receiver got every notification in time")
            .unwrap()
            .expect("the receiver kept running");
        let request: serde_json::Value = serde_json::from_str(&line).unwrap();
        seen.push(request);
    }
    for request in &seen {
        assert_eq!(request["verified"], true, "{request}");
    }
    let mut ids: Vec<&str> = seen.iter().map(|r| r["id"].as_str().unwrap()).collect();
    ids.sort();
    let mut expected: Vec<&str> = ns.iter().map(|n| n.notification_id.as_str()).collect();
    expected.sort();
    assert_eq!(ids, expected);
    service.stop().unwrap();
}

/// 32 random bytes for a master key.
fn uuid_bytes() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    bytes[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    bytes[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    bytes
}
