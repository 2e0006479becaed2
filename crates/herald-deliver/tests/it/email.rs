//! The email channel end to end: notifications on the real broker, `herald deliver --channel
//! email`'s service, and a real SMTP server (aiosmtpd, `tests/interop/smtp_sink.py`) that
//! receives each message and parses its MIME structure with Python's `email` package.

use std::time::Duration;

use herald_core::Subscription;
use herald_core::attempt::{AttemptStatus, DeliveryAttempt};
use herald_core::topics::TopicNames;
use herald_deliver::testkit::{
    PythonPeer, RunningDeliverer, first_dead_letter, notification, produce_notifications,
    put_subscriptions, test_config, webhook_subscription,
};
use herald_kafka::testkit::{Isolation, TestKafka};

fn mail_subscription(id: &str, to: &str) -> Subscription {
    let mut sub = webhook_subscription(id, "app-mail", to);
    sub.channel = "email".to_owned();
    let headers = &mut sub.destination.headers;
    headers.insert("from".into(), "Orders <orders@shop.example>".into());
    headers.insert(
        "subject".into(),
        "{{ notification.event_type }}: {{ notification.event_id }}".into(),
    );
    headers.insert(
        "html".into(),
        "<h1>{{ notification.event_type }}</h1>".into(),
    );
    sub
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_reach_a_real_smtp_server_and_4xx_retries_while_5xx_dead_letters() {
    let kafka = TestKafka::new("email");
    let names = TopicNames::with_prefix(kafka.prefix()).unwrap();
    let mut sink = PythonPeer::start("smtp_sink.py", &[]).await;
    let port = sink.port;

    let mut config = test_config(&kafka, &[300, 300]);
    config.channel = "email".to_owned();
    config.email.smtp_host = "127.0.0.1".to_owned();
    config.email.smtp_port = port;
    config.email.security = herald_deliver::channels::email::SmtpSecurity::None;
    herald_deliver::ensure_topics(&config).await.unwrap();
    let ok = mail_subscription("sub-ok", "ops@shop.example");
    let busy = mail_subscription("sub-busy", "tempfail@shop.example");
    let rejected = mail_subscription("sub-rejected", "reject@shop.example");
    put_subscriptions(
        &kafka,
        &names,
        &[ok.clone(), busy.clone(), rejected.clone()],
    );
    let service = RunningDeliverer::start(config).unwrap();
    let ns = vec![
        notification(&ok, "mail", 1),
        notification(&ok, "mail", 2),
        notification(&busy, "mail", 3),
        notification(&rejected, "mail", 4),
    ];
    produce_notifications(&kafka, &names, &ns);

    // The two for ops@ and, after one 451, the one for tempfail@.
    let got = sink.lines(3).await;
    for message in &got {
        let id = message["notification_id"].as_str().unwrap();
        let n = ns
            .iter()
            .find(|n| n.notification_id == id)
            .expect("a known id");
        assert_eq!(message["from"], "Orders <orders@shop.example>");
        assert_eq!(message["to"], n.destination);
        assert_eq!(message["subject"], format!("order.paid: {}", n.event_id));
        assert_eq!(message["content_type"], "multipart/alternative");
        assert_eq!(
            message["html"].as_str().unwrap().trim(),
            "<h1>order.paid</h1>"
        );
        let text: serde_json::Value =
            serde_json::from_str(message["text"].as_str().unwrap()).unwrap();
        assert_eq!(
            text,
            serde_json::from_str::<serde_json::Value>(&n.payload).unwrap()
        );
        assert!(message["message_id"].as_str().unwrap().contains(id));
    }

    // 550 for reject@: dead-lettered at once as permanent, with the relay's answer.
    let letter = first_dead_letter(&kafka, &names, "email").await;
    assert_eq!(letter.kind, "permanent");
    assert!(letter.error.contains("550"), "{}", letter.error);
    assert_eq!(
        letter.notification.unwrap().notification_id,
        ns[3].notification_id
    );

    // The 451 was retried: two attempts for that notification, the first scheduled for retry.
    let codec = herald_contract::RecordCodec::builtin("dev.herald.DeliveryAttempt");
    let attempts: Vec<DeliveryAttempt> = kafka
        .read_topic(
            &names.attempts(),
            Isolation::ReadCommitted,
            5,
            Duration::from_secs(20),
        )
        .iter()
        .map(|r| codec.decode(r.value.as_deref().unwrap()).unwrap())
        .filter(|a: &DeliveryAttempt| a.notification_id == ns[2].notification_id)
        .collect();
    let statuses: Vec<AttemptStatus> = attempts.iter().map(|a| a.status).collect();
    assert_eq!(
        statuses,
        [AttemptStatus::RetryScheduled, AttemptStatus::Succeeded],
        "{attempts:?}"
    );
    assert_eq!(attempts[0].response_code, Some(451));
    service.stop().unwrap();
}
