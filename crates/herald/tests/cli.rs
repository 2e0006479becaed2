//! The `herald` binary, run as a user runs it, against the real broker.

use std::process::Command;

fn herald() -> Command {
    Command::new(env!("CARGO_BIN_EXE_herald"))
}

#[test]
fn check_lists_the_broker_under_test() {
    let brokers = std::env::var("HERALD_TEST_BROKERS")
        .expect("HERALD_TEST_BROKERS is not set: run this through scripts/test");
    let output = herald()
        .args(["check", "--brokers", &brokers])
        .output()
        .expect("herald runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "herald check failed: {output:?}");
    assert!(
        stdout.contains(&format!("at {brokers}")) && stdout.contains("broker 1"),
        "unexpected output: {stdout}"
    );
}

#[test]
fn check_fails_with_a_clear_message_when_nothing_listens() {
    // Port 1 on loopback refuses connections; the check must fail, not hang or succeed.
    let output = herald()
        .args(["check", "--brokers", "127.0.0.1:1", "--timeout-secs", "2"])
        .output()
        .expect("herald runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "herald check succeeded against nothing"
    );
    assert!(
        stderr.contains("the Kafka cluster at 127.0.0.1:1 did not answer"),
        "unexpected error: {stderr}"
    );
}

#[tokio::test]
async fn schemas_register_then_produce_writes_avro_with_cloudevents_headers() {
    use herald_kafka::testkit::{Isolation, TestKafka, test_registry};

    let kafka = TestKafka::new("cli-produce");
    let topic = kafka.create_topic("events.order", 1).await;
    let schemas = concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas");
    let events_prefix = format!("{}.", kafka.prefix());
    let registered = herald()
        .args([
            "schemas",
            "register",
            "--dir",
            schemas,
            "--registry",
            &test_registry(),
        ])
        .args([
            "--prefix",
            kafka.prefix(),
            "--events-prefix",
            &events_prefix,
            "--channels",
            "webhook",
        ])
        .output()
        .expect("herald runs");
    let stdout = String::from_utf8_lossy(&registered.stdout);
    assert!(
        registered.status.success(),
        "register failed: {registered:?}"
    );
    assert!(stdout.contains(&format!("{topic}-value\tid ")), "{stdout}");

    let data = r#"{"order_id":"o-7","tenant_id":"m-1","user_id":"u-1","payment_id":"p-1","amount":"9.99","currency":"CNY","payment_method":"CARD","items":[],"paid_at":"2026-12-03T10:15:30.123Z"}"#;
    let produced = herald()
        .args([
            "produce",
            "--brokers",
            &kafka.config().brokers,
            "--registry",
            &test_registry(),
        ])
        .args(["--topic", &topic, "--type", "order.paid", "--data", data])
        .output()
        .expect("herald runs");
    assert!(produced.status.success(), "produce failed: {produced:?}");
    assert!(String::from_utf8_lossy(&produced.stdout).contains(&format!("\t{topic}[0]@")));

    let file = std::env::temp_dir().join(format!("{}.ndjson", kafka.prefix()));
    let line = format!(r#"{{"type":"order.paid","id":"from-file","data":{data}}}"#);
    std::fs::write(&file, format!("{line}\n\n{line}\n")).expect("write ndjson");
    let from_file = herald()
        .args([
            "produce",
            "--brokers",
            &kafka.config().brokers,
            "--registry",
            &test_registry(),
        ])
        .args(["--topic", &topic, "--file", file.to_str().expect("utf-8")])
        .output()
        .expect("herald runs");
    assert!(
        from_file.status.success(),
        "produce --file failed: {from_file:?}"
    );

    let records = kafka.read_topic(
        &topic,
        Isolation::ReadCommitted,
        3,
        std::time::Duration::from_secs(30),
    );
    assert_eq!(records.len(), 3, "{records:?}");
    for record in &records {
        assert_eq!(
            record.value.as_deref().map(|v| v[0]),
            Some(0),
            "Confluent framing"
        );
        assert_eq!(
            record.key.as_deref(),
            Some(b"o-7".as_slice()),
            "keyed by order_id"
        );
        let header = |name: &str| {
            record
                .headers
                .iter()
                .find(|(k, _)| k == name)
                .and_then(|(_, v)| v.clone())
        };
        assert_eq!(header("ce_type").as_deref(), Some(b"order.paid".as_slice()));
        assert!(header("traceparent").is_some());
    }
    let ids: Vec<_> = records[1..]
        .iter()
        .map(|r| {
            r.headers
                .iter()
                .find(|(k, _)| k == "ce_id")
                .and_then(|(_, v)| v.clone())
        })
        .collect();
    assert_eq!(
        ids,
        vec![Some(b"from-file".to_vec()), Some(b"from-file".to_vec())]
    );

    std::fs::write(
        &file,
        "{\"type\":\"order.paid\",\"data\":{\"order_id\":1}}\n",
    )
    .expect("write ndjson");
    let bad = herald()
        .args([
            "produce",
            "--brokers",
            &kafka.config().brokers,
            "--registry",
            &test_registry(),
        ])
        .args(["--topic", &topic, "--file", file.to_str().expect("utf-8")])
        .output()
        .expect("herald runs");
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success());
    assert!(
        stderr.contains("$.order_id") && stderr.contains("expected a string"),
        "{stderr}"
    );
    std::fs::remove_file(&file).ok();
}

#[tokio::test]
async fn replay_exports_a_window_and_refuses_a_bad_time_with_a_clear_message() {
    use herald_kafka::testkit::{TestKafka, test_registry};
    use herald_router::testkit;

    let kafka = TestKafka::new("cli-replay");
    let topic = kafka.create_topic("events.replay", 2).await;
    let from = chrono::Utc::now() - chrono::Duration::seconds(5);
    let events: Vec<_> = (0..20).map(|i| testkit::event("cli-replay", i)).collect();
    testkit::produce_events(&kafka, &topic, &events);
    let to = chrono::Utc::now() + chrono::Duration::seconds(5);
    let out = std::env::temp_dir().join(format!("{}.ndjson", kafka.prefix()));
    let output = herald()
        .args(["replay", "--brokers", &kafka.config().brokers])
        .args(["--registry", &test_registry(), "--topic", &topic])
        .args(["--from", &from.to_rfc3339(), "--to", &to.to_rfc3339()])
        .args(["--type", "order.*"])
        .arg("--out")
        .arg(&out)
        .output()
        .expect("herald runs");
    assert!(output.status.success(), "herald replay failed: {output:?}");
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let orders = events
        .iter()
        .filter(|e| e.event_type.starts_with("order."))
        .count();
    assert_eq!(summary["written"], orders as u64, "{summary}");
    assert_eq!(summary["complete"], true);
    let lines = std::fs::read_to_string(&out).unwrap();
    assert_eq!(lines.lines().count(), orders);

    let output = herald()
        .args(["replay", "--topic", &topic, "--from", "yesterday"])
        .args(["--to", &to.to_rfc3339(), "--out", "x.ndjson"])
        .output()
        .expect("herald runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("is not an RFC 3339 time"), "{stderr}");
}

#[tokio::test]
async fn topics_apply_plans_creates_grows_restores_settings_and_is_idempotent() {
    use herald_kafka::testkit::TestKafka;
    use herald_kafka::{Admin, TopicChange};

    let kafka = TestKafka::new("cli-apply");
    let prefix = kafka.prefix().to_owned();
    let apply = |extra: &[&str]| {
        let output = herald()
            .args(["topics", "apply", "--brokers", &kafka.config().brokers])
            .args(["--prefix", &prefix, "--retry-tiers-ms", "1000"])
            .args(extra)
            .output()
            .expect("herald runs");
        assert!(
            output.status.success(),
            "herald topics apply failed: {output:?}"
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let lines = |plan: &str| plan.lines().map(str::to_owned).collect::<Vec<_>>();

    // A dry run plans every topic and creates none.
    let plan = apply(&["--partitions", "2", "--dry-run"]);
    assert!(lines(&plan).len() > 20, "{plan}");
    assert!(
        lines(&plan).iter().all(|l| l.starts_with("create\t")),
        "{plan}"
    );
    let attempts = format!("{prefix}.attempts");
    let exists = |topic: &str| {
        Admin::new(kafka.config())
            .unwrap()
            .wait_for_leaders(topic, std::time::Duration::from_millis(500))
            .is_ok()
    };
    assert!(!exists(&attempts), "a dry run created {attempts}");

    // Applied: created; applied again: nothing to do.
    apply(&["--partitions", "2"]);
    assert!(exists(&attempts));
    let again = apply(&["--partitions", "2"]);
    assert!(
        lines(&again).iter().all(|l| l.starts_with("ok\t")),
        "{again}"
    );

    // More partitions: the partitioned topics grow, the compacted registries keep one.
    let grown = apply(&["--partitions", "3"]);
    assert!(
        grown.contains(&format!("partitions\t{prefix}.notify.webhook\t2 -> 3")),
        "{grown}"
    );
    assert!(
        grown.contains(&format!("ok\t{prefix}.subscriptions")),
        "{grown}"
    );

    // A setting changed by hand is put back, keeping the topic's other overrides.
    Admin::new(kafka.config())
        .unwrap()
        .apply_plan(&[TopicChange::SetConfigs {
            topic: attempts.clone(),
            changes: vec![("retention.ms".into(), None, "60000".into())],
            kept: vec![],
        }])
        .await
        .unwrap();
    let restored = apply(&["--partitions", "3"]);
    assert!(
        restored.contains(&format!(
            "configs\t{attempts}\tretention.ms: 60000 -> 2592000000"
        )),
        "{restored}"
    );
    let settled = apply(&["--partitions", "3"]);
    assert!(
        lines(&settled).iter().all(|l| l.starts_with("ok\t")),
        "{settled}"
    );

    // Leave no topics behind for the next run.
    let names: Vec<String> = lines(&plan)
        .iter()
        .filter_map(|l| l.split('\t').nth(1).map(str::to_owned))
        .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    kafka.admin().delete_topics(&refs).await.unwrap();
}

#[test]
fn log_format_json_writes_one_json_object_per_log_line() {
    use std::io::{BufRead, BufReader};
    // herald dev logs its services' start at info level; every line must be a JSON object.
    let mut child = herald()
        .args(["dev", "--events", "0", "--listen", "127.0.0.1:0"])
        .args(["--receiver-listen", "127.0.0.1:0", "--log-format", "json"])
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("herald runs");
    let lines: Vec<String> = BufReader::new(child.stderr.take().unwrap())
        .lines()
        .take(3)
        .map(Result::unwrap)
        .collect();
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(lines.len(), 3, "{lines:?}");
    let messages: Vec<String> = lines
        .iter()
        .map(|line| {
            let log: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            assert!(
                log["timestamp"].is_string() && log["level"] == "INFO",
                "{log}"
            );
            log["fields"]["message"].as_str().unwrap().to_owned()
        })
        .collect();
    assert!(
        messages.contains(&"admin API listening".to_owned()),
        "{messages:?}"
    );
}

#[test]
fn a_config_file_and_herald_variables_set_flags_and_bad_keys_are_named() {
    use herald_kafka::testkit::TestKafka;

    let kafka = TestKafka::new("cli-config");
    let dir = std::env::temp_dir().join(format!("{}-config", kafka.prefix()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("herald.toml");
    std::fs::write(
        &file,
        format!(
            "[kafka]\nbrokers = {:?}\n\n[topics.apply]\nprefix = {:?}\npartitions = 2\ndry_run = true\nretry_tiers_ms = [1000]\n",
            kafka.config().brokers,
            kafka.prefix()
        ),
    )
    .unwrap();
    let plan = |env: &[(&str, &str)], extra: &[&str]| {
        let output = herald()
            .args(["--config", file.to_str().unwrap(), "topics", "apply"])
            .args(extra)
            .envs(env.iter().copied())
            .output()
            .expect("herald runs");
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    let attempts = |plan: &str| {
        plan.lines()
            .find(|l| l.contains(&format!("\t{}.attempts\t", kafka.prefix())))
            .unwrap_or_else(|| panic!("no attempts topic in {plan}"))
            .to_owned()
    };
    // The file: brokers from [kafka], the rest from [topics.apply] (a dry run, 2 partitions).
    let from_file = plan(&[], &[]);
    assert!(attempts(&from_file).starts_with("create\t"), "{from_file}");
    assert!(
        attempts(&from_file).contains("partitions=2 "),
        "{from_file}"
    );
    // A HERALD__ variable overrides the file; a flag overrides both.
    let from_env = plan(&[("HERALD__TOPICS__APPLY__PARTITIONS", "3")], &[]);
    assert!(attempts(&from_env).contains("partitions=3 "), "{from_env}");
    let from_flag = plan(
        &[("HERALD__TOPICS__APPLY__PARTITIONS", "3")],
        &["--partitions", "4"],
    );
    assert!(
        attempts(&from_flag).contains("partitions=4 "),
        "{from_flag}"
    );

    // A key that is no setting of the command is refused, naming the section and the key.
    std::fs::write(&file, "[topics.apply]\npartitons = 2\n").unwrap();
    let output = herald()
        .args([
            "--config",
            file.to_str().unwrap(),
            "topics",
            "apply",
            "--dry-run",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("[topics.apply] partitons") && stderr.contains("partitions"),
        "{stderr}"
    );
    // [kafka.librdkafka] reaches the clients: librdkafka itself refuses a bad value.
    std::fs::write(
        &file,
        format!(
            "[kafka]\nbrokers = {:?}\n[kafka.librdkafka]\n\"socket.timeout.ms\" = \"soon\"\n",
            kafka.config().brokers
        ),
    )
    .unwrap();
    let output = herald()
        .args([
            "--config",
            file.to_str().unwrap(),
            "check",
            "--timeout-secs",
            "2",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("socket.timeout.ms"), "{stderr}");
}

#[test]
fn the_example_configuration_is_what_herald_config_example_prints() {
    let output = herald().args(["config", "example"]).output().unwrap();
    assert!(output.status.success());
    let printed = String::from_utf8(output.stdout).unwrap();
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/herald.example.toml"
    ))
    .unwrap();
    assert_eq!(
        committed, printed,
        "regenerate: herald config example > deploy/herald.example.toml"
    );
    // It parses, and documents the services' settings.
    let parsed: toml::Table = toml::from_str(&printed).unwrap();
    for section in ["kafka", "router", "deliver", "inbox", "admin"] {
        assert!(parsed.contains_key(section), "[{section}] missing");
    }
    for setting in [
        "# max_batch = 5000",
        "# retry_schedule_ms = []",
        "# operator_token = \"\"",
        "# visibility_timeout_ms = 30000",
    ] {
        assert!(printed.contains(setting), "{setting} missing");
    }
}
