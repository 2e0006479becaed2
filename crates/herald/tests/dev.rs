//! `herald dev` from a fresh start: the real binary, its embedded broker and everything in it.
//! Within 60 seconds the echo receiver has received demo events, signed, and the admin API the
//! console reads shows their deliveries; SIGTERM stops it with exit status 0.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn herald_dev_shows_delivered_events_within_a_minute() {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args([
            "dev",
            "--listen",
            "127.0.0.1:0",
            "--receiver-listen",
            "127.0.0.1:0",
        ])
        .args(["--events", "6"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("herald dev starts");
    // The banner: where to look.
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut banner = std::collections::HashMap::new();
    while banner.len() < 3 {
        let line = lines.next().expect("herald dev prints its banner").unwrap();
        for field in ["console", "app key", "receiver"] {
            if let Some(value) = line.trim().strip_prefix(&format!("{field}:")) {
                let value = value.split_whitespace().next().unwrap().to_owned();
                banner.insert(field, value);
            }
        }
    }
    // Keep reading stdout so the process never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    let http = reqwest::Client::new();
    let console = &banner["console"];
    let base = console.trim_end_matches("/console");
    let key = &banner["app key"];

    let deadline = started + Duration::from_secs(60);
    let (mut received, mut delivered) = (Vec::new(), Vec::new());
    while Instant::now() < deadline && (received.len() < 3 || delivered.len() < 3) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        received = match http.get(&banner["receiver"]).send().await {
            Ok(r) => r.json::<Vec<Value>>().await.unwrap_or_default(),
            Err(_) => continue,
        };
        let log: Value = match http
            .get(format!("{base}/v1/deliveries?status=SUCCEEDED"))
            .bearer_auth(key)
            .send()
            .await
        {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(_) => continue,
        };
        delivered = log["data"].as_array().cloned().unwrap_or_default();
    }
    let took = started.elapsed();
    assert!(
        received.len() >= 3,
        "the echo receiver got {} events in {took:?}",
        received.len()
    );
    assert!(
        delivered.len() >= 3,
        "the delivery log shows {} deliveries in {took:?}",
        delivered.len()
    );
    eprintln!(
        "herald dev: {} received, {} in the delivery log, {took:?} after start",
        received.len(),
        delivered.len()
    );
    // What arrived is what the log shows: signed demo events of the demo subscription.
    for got in &received {
        assert!(
            got["webhook_signature"]
                .as_str()
                .unwrap()
                .starts_with("v1,"),
            "{got}"
        );
        assert!(
            got["body"]["type"].as_str().unwrap().starts_with("order."),
            "{got}"
        );
    }
    let logged: Vec<&str> = delivered
        .iter()
        .map(|a| a["notification_id"].as_str().unwrap())
        .collect();
    assert!(
        received
            .iter()
            .any(|r| logged.contains(&r["webhook_id"].as_str().unwrap()))
    );
    assert!(
        delivered
            .iter()
            .all(|a| a["subscription_id"] == "demo-orders")
    );
    let page = http.get(console).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Herald console"));

    let exit = herald_kafka::testkit::terminate(&mut child, Duration::from_secs(20))
        .expect("herald dev stops within 20 s of SIGTERM");
    assert!(exit.success(), "herald dev exited with {exit} on SIGTERM");
}
