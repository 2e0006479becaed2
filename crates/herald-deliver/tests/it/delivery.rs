//! Retries, dead letters, redrive and 410 Gone, end to end: notifications are produced to the
//! real broker, the service delivers them to local receivers, and what the receivers got and
//! what the service wrote (read back read_committed) are compared.

use std::time::Duration;

use herald_contract::RecordCodec;
use herald_core::Subscription;
use herald_core::attempt::{AttemptStatus, DeliveryAttempt};
use herald_core::topics::{ChannelName, TopicNames};
use herald_deliver::redrive;
use herald_deliver::testkit::{
    Behaviour, Receiver, RunningDeliverer, notification, produce_notifications, put_subscriptions,
    test_config, webhook_subscription,
};
use herald_kafka::testkit::{Isolation, TestKafka};

fn attempts_of(kafka: &TestKafka, names: &TopicNames, min: usize) -> Vec<DeliveryAttempt> {
    let codec = RecordCodec::builtin("dev.herald.DeliveryAttempt");
    kafka
        .read_topic(
            &names.attempts(),
            Isolation::ReadCommitted,
            min,
            Duration::from_secs(20),
        )
        .iter()
        .map(|r| codec.decode(r.value.as_deref().unwrap()).unwrap())
        .collect()
}

async fn setup(
    test: &str,
    schedule_ms: &[u64],
) -> (
    TestKafka,
    TopicNames,
    Receiver,
    herald_deliver::DeliverConfig,
) {
    let kafka = TestKafka::new(test);
    let names = TopicNames::with_prefix(kafka.prefix()).unwrap();
    let config = test_config(&kafka, schedule_ms);
    herald_deliver::ensure_topics(&config).await.unwrap();
    (kafka, names, Receiver::start().await, config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_failing_three_times_gets_it_on_the_fourth_attempt_with_the_same_id() {
    let (kafka, names, receiver, config) = setup("fail-three", &[200, 200, 200, 200]).await;
    receiver.set(
        "flaky",
        Behaviour::FailFirst {
            failures: 3,
            status: 503,
        },
    );
    let sub = webhook_subscription("sub-flaky", "app-1", &receiver.url("flaky"));
    put_subscriptions(&kafka, &names, std::slice::from_ref(&sub));
    let n = notification(&sub, "r", 1);
    let service = RunningDeliverer::start(config).unwrap();
    produce_notifications(&kafka, &names, std::slice::from_ref(&n));

    let got = receiver
        .wait_until(Duration::from_secs(30), |got| {
            got.iter().any(|r| r.status == 200)
        })
        .await;
    assert_eq!(got.len(), 4, "{got:?}");
    assert!(got.iter().all(|r| r.webhook_id == n.notification_id));
    assert_eq!(
        got.iter().map(|r| r.status).collect::<Vec<_>>(),
        [503, 503, 503, 200]
    );
    // Each retry waited in its tier until due: the schedule says 200 ms (no jitter here).
    for pair in got.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= Duration::from_millis(190),
            "a retry came after only {gap:?}"
        );
    }
    let attempts = attempts_of(&kafka, &names, 4);
    let mut statuses: Vec<(i32, AttemptStatus)> =
        attempts.iter().map(|a| (a.attempt, a.status)).collect();
    statuses.sort_by_key(|(n, _)| *n);
    assert_eq!(
        statuses,
        [
            (1, AttemptStatus::RetryScheduled),
            (2, AttemptStatus::RetryScheduled),
            (3, AttemptStatus::RetryScheduled),
            (4, AttemptStatus::Succeeded),
        ]
    );
    assert!(
        attempts
            .iter()
            .all(|a| a.notification_id == n.notification_id)
    );
    assert_eq!(attempts[0].response_code, Some(503));
    service.stop().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_400_is_dead_lettered_at_once_with_reasons() {
    let (kafka, names, receiver, config) = setup("bad-request", &[200, 200]).await;
    receiver.set("strict", Behaviour::Status(400));
    let sub = webhook_subscription("sub-strict", "app-1", &receiver.url("strict"));
    put_subscriptions(&kafka, &names, std::slice::from_ref(&sub));
    let n = notification(&sub, "r", 1);
    let service = RunningDeliverer::start(config).unwrap();
    produce_notifications(&kafka, &names, std::slice::from_ref(&n));

    let channel = ChannelName::parse("webhook").unwrap();
    let dlq = kafka.read_topic(
        &names.notify_dlq(&channel),
        Isolation::ReadCommitted,
        1,
        Duration::from_secs(20),
    );
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0].header("herald-error-kind"), Some(&b"permanent"[..]));
    assert!(String::from_utf8_lossy(dlq[0].header("herald-error").unwrap()).contains("400"));
    assert_eq!(
        dlq[0].header("herald-origin-topic"),
        Some(names.notify(&channel).as_bytes())
    );
    let attempts = attempts_of(&kafka, &names, 1);
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].status, AttemptStatus::DeadLettered);
    assert_eq!(receiver.received().len(), 1, "no retry after a 400");
    service.stop().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_down_past_the_schedule_is_dead_lettered_and_redrive_delivers_it() {
    let (kafka, names, receiver, config) = setup("exhausted", &[100, 300]).await;
    receiver.set("down", Behaviour::Status(503));
    let sub = webhook_subscription("sub-down", "app-1", &receiver.url("down"));
    put_subscriptions(&kafka, &names, std::slice::from_ref(&sub));
    let n = notification(&sub, "r", 1);
    let service = RunningDeliverer::start(config.clone()).unwrap();
    produce_notifications(&kafka, &names, std::slice::from_ref(&n));

    let channel = ChannelName::parse("webhook").unwrap();
    let dlq = kafka.read_topic(
        &names.notify_dlq(&channel),
        Isolation::ReadCommitted,
        1,
        Duration::from_secs(30),
    );
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0].header("herald-error-kind"), Some(&b"exhausted"[..]));
    assert_eq!(dlq[0].header("herald-attempt"), Some(&b"3"[..]));
    assert_eq!(
        receiver.received().len(),
        3,
        "the first attempt and two retries"
    );

    receiver.set("down", Behaviour::Status(200));
    let letters = redrive::list(&config.kafka, &names, &channel).unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(
        letters[0].notification.as_ref().unwrap().notification_id,
        n.notification_id
    );
    let redriven = redrive::redrive(&config.kafka, &names, &channel, |l| l.kind == "exhausted")
        .await
        .unwrap();
    assert_eq!(redriven, 1);
    let got = receiver
        .wait_until(Duration::from_secs(20), |got| {
            got.iter().any(|r| r.status == 200)
        })
        .await;
    let delivered: Vec<_> = got.iter().filter(|r| r.status == 200).collect();
    assert_eq!(delivered.len(), 1);
    assert_eq!(
        delivered[0].webhook_id, n.notification_id,
        "redrive keeps the id"
    );
    service.stop().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_410_dead_letters_and_disables_the_subscription() {
    let (kafka, names, receiver, config) = setup("gone", &[100]).await;
    receiver.set("gone", Behaviour::Status(410));
    let sub = webhook_subscription("sub-gone", "app-1", &receiver.url("gone"));
    put_subscriptions(&kafka, &names, std::slice::from_ref(&sub));
    let service = RunningDeliverer::start(config).unwrap();
    produce_notifications(&kafka, &names, &[notification(&sub, "r", 1)]);

    let channel = ChannelName::parse("webhook").unwrap();
    let dlq = kafka.read_topic(
        &names.notify_dlq(&channel),
        Isolation::ReadCommitted,
        1,
        Duration::from_secs(20),
    );
    assert_eq!(dlq[0].header("herald-error-kind"), Some(&b"gone"[..]));
    let codec = RecordCodec::subscription();
    let versions: Vec<Subscription> = kafka
        .read_topic(
            &names.subscriptions(),
            Isolation::ReadCommitted,
            2,
            Duration::from_secs(20),
        )
        .iter()
        .map(|r| codec.decode(r.value.as_deref().unwrap()).unwrap())
        .collect();
    let last = versions.last().unwrap();
    assert!(!last.enabled, "the subscription is disabled");
    assert_eq!(last.version, sub.version + 1);

    // A notification for the disabled subscription is dead-lettered without a request.
    produce_notifications(&kafka, &names, &[notification(&sub, "r", 2)]);
    let dlq = kafka.read_topic(
        &names.notify_dlq(&channel),
        Isolation::ReadCommitted,
        2,
        Duration::from_secs(20),
    );
    assert_eq!(dlq.len(), 2);
    assert!(
        dlq.iter()
            .any(|r| r.header("herald-error-kind") == Some(&b"subscription_disabled"[..]))
    );
    assert_eq!(
        receiver.received().len(),
        1,
        "nothing is sent after the 410"
    );
    service.stop().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_hung_endpoint_does_not_hold_back_the_others() {
    let (kafka, names, receiver, mut config) = setup("hung", &[60_000]).await;
    config.webhook.timeout_ms = 5_000;
    config.endpoint_concurrency = 4;
    receiver.set("hung", Behaviour::Hang);
    let hung = webhook_subscription("sub-hung", "app-h", &receiver.url("hung"));
    let healthy: Vec<Subscription> = (0..20)
        .map(|i| {
            webhook_subscription(
                &format!("sub-{i}"),
                "app-1",
                &receiver.url(&format!("ok-{i}")),
            )
        })
        .collect();
    let mut all = healthy.clone();
    all.push(hung.clone());
    put_subscriptions(&kafka, &names, &all);
    let service = RunningDeliverer::start(config).unwrap();
    // The hung endpoint's notifications first, so that they are ahead of everything else.
    let mut ns: Vec<_> = (0..50).map(|i| notification(&hung, "h", i)).collect();
    ns.extend((0..200).map(|i| notification(&healthy[i % 20], "ok", i)));
    produce_notifications(&kafka, &names, &ns);

    let got = receiver
        .wait_until(Duration::from_secs(4), |got| {
            got.iter().filter(|r| r.path.starts_with("ok-")).count() >= 200
        })
        .await;
    let healthy_got = got.iter().filter(|r| r.path.starts_with("ok-")).count();
    assert_eq!(
        healthy_got, 200,
        "every healthy notification arrived while the hung endpoint hangs (under its 5 s timeout)"
    );
    service.stop().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digest_subscription_sends_windows_of_notifications_as_one_request() {
    let (kafka, names, receiver, config) = setup("digest", &[200]).await;
    let mut sub = webhook_subscription("sub-digest", "app-1", &receiver.url("digest"));
    sub.digest = Some(herald_core::subscription::DigestWindow {
        max_events: 5,
        max_wait_ms: 700,
    });
    put_subscriptions(&kafka, &names, std::slice::from_ref(&sub));
    let ns: Vec<_> = (0..12).map(|i| notification(&sub, "d", i)).collect();
    let service = RunningDeliverer::start(config).unwrap();
    produce_notifications(&kafka, &names, &ns);

    let got = receiver
        .wait_until(Duration::from_secs(20), |got| {
            got.iter()
                .map(|r| {
                    serde_json::from_str::<Vec<serde_json::Value>>(&r.body).map_or(0, |v| v.len())
                })
                .sum::<usize>()
                >= 12
        })
        .await;
    let sizes: Vec<usize> = got
        .iter()
        .map(|r| {
            serde_json::from_str::<Vec<serde_json::Value>>(&r.body)
                .expect("a JSON array")
                .len()
        })
        .collect();
    assert_eq!(sizes.iter().sum::<usize>(), 12, "{sizes:?}");
    assert!(
        sizes.iter().all(|s| *s <= 5),
        "windows hold at most max_events: {sizes:?}"
    );
    assert!(
        sizes.len() >= 3,
        "12 notifications need at least three windows of 5: {sizes:?}"
    );
    let mut items: Vec<String> = got
        .iter()
        .flat_map(|r| serde_json::from_str::<Vec<serde_json::Value>>(&r.body).unwrap())
        .map(|v| v["data"]["order_id"].as_str().unwrap().to_owned())
        .collect();
    items.sort();
    let mut expected: Vec<String> = (0..12).map(|i| format!("o-{i}")).collect();
    expected.sort();
    assert_eq!(items, expected, "every notification in exactly one digest");
    let attempts = attempts_of(&kafka, &names, 12);
    assert_eq!(attempts.len(), 12, "one attempt record per notification");
    assert!(
        attempts
            .iter()
            .all(|a| a.status == AttemptStatus::Succeeded)
    );
    service.stop().unwrap();
}
