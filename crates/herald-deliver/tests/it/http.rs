//! The generic HTTP channel end to end: a request template from TOML, the delivery service for
//! `http`, and a local receiver that records what it got; the signature is checked here with
//! the recipe's own definition (HMAC-SHA256 of `timestamp.body`, hex).

use std::time::Duration;

use herald_core::topics::TopicNames;
use herald_deliver::channels::http::HttpTemplate;
use herald_deliver::testkit::{
    Behaviour, Receiver, RunningDeliverer, notification, produce_notifications, put_subscriptions,
    test_config, webhook_subscription,
};
use herald_kafka::testkit::TestKafka;
use hmac::{Hmac, Mac};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_api_gets_rendered_signed_requests_and_its_answers_decide() {
    let kafka = TestKafka::new("http-template");
    let names = TopicNames::with_prefix(kafka.prefix()).unwrap();
    let receiver = Receiver::start().await;
    receiver.set(
        "im/flaky",
        Behaviour::FailFirst {
            failures: 1,
            status: 503,
        },
    );
    let template = HttpTemplate::from_toml(&format!(
        r#"
url = "{}/{{{{ notification.destination }}}}?event={{{{ notification.event_id }}}}"
body = '{{"to": "{{{{ notification.destination }}}}", "text": {{{{ (event.type ~ " " ~ event.data.order_id) | tojson }}}}}}'
[headers]
content-type = "application/json"
webhook-id = "{{{{ notification.id }}}}"
x-timestamp = "{{{{ timestamp }}}}"
[signing]
algorithm = "hmac-sha256"
secret = "in-house-key"
message = "{{{{ timestamp }}}}.{{{{ body }}}}"
header = "X-Signature"
"#,
        receiver.base
    ))
    .unwrap();
    let mut config = test_config(&kafka, &[200]);
    config.channel = "http".to_owned();
    config.http_template = Some(template);
    herald_deliver::ensure_topics(&config).await.unwrap();
    let mut ok = webhook_subscription("sub-im", "app-im", "im/alice");
    ok.channel = "http".to_owned();
    let mut flaky = webhook_subscription("sub-flaky", "app-im", "im/flaky");
    flaky.channel = "http".to_owned();
    put_subscriptions(&kafka, &names, &[ok.clone(), flaky.clone()]);
    let service = RunningDeliverer::start(config).unwrap();
    let ns = [notification(&ok, "im", 1), notification(&flaky, "im", 2)];
    produce_notifications(&kafka, &names, &ns);

    let got = receiver
        .wait_until(Duration::from_secs(30), |got| {
            got.iter().filter(|r| r.status == 200).count() == 2
        })
        .await;
    // The flaky one answered 503 once and was retried.
    assert_eq!(got.len(), 3, "{got:?}");
    for request in &got {
        let n = ns
            .iter()
            .find(|n| n.notification_id == request.webhook_id)
            .expect("the rendered webhook-id header");
        assert_eq!(request.path, n.destination);
        let body: serde_json::Value = serde_json::from_str(&request.body).unwrap();
        assert_eq!(body["to"], n.destination);
        assert_eq!(body["text"], format!("order.paid o-{}", &n.event_id[4..]));
        let timestamp = &request.headers["x-timestamp"];
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"in-house-key").unwrap();
        mac.update(format!("{timestamp}.{}", request.body).as_bytes());
        let expected: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(request.headers["x-signature"], expected);
    }
    service.stop().unwrap();
}
