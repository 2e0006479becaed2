//! The bot channels end to end: notifications on the real broker, the delivery service for
//! `slack`, `feishu`, `dingtalk` and `wecom`, and a Python stand-in for each platform that checks
//! the request shape and signature as the platform documents them
//! (`tests/interop/bot_receiver.py`, standard library only).

use herald_core::Subscription;
use herald_core::topics::TopicNames;
use herald_deliver::testkit::{
    PythonPeer, RunningDeliverer, first_dead_letter, notification, produce_notifications,
    put_subscriptions, test_config, webhook_subscription,
};
use herald_kafka::testkit::TestKafka;

const SECRET: &str = "SECa1b2c3-bot-secret";

struct BotReceiver {
    peer: PythonPeer,
}

impl BotReceiver {
    async fn start() -> Self {
        Self {
            peer: PythonPeer::start("bot_receiver.py", &[SECRET]).await,
        }
    }

    /// The bot URL of `provider` with `behaviour`, shaped as the platform's own URLs are.
    fn url(&self, provider: &str, behaviour: &str) -> String {
        let query = match provider {
            "dingtalk" => "?access_token=t0ken",
            "wecom" => "?key=k3y",
            _ => "",
        };
        format!(
            "http://127.0.0.1:{}/{provider}/{behaviour}{query}",
            self.peer.port
        )
    }

    async fn requests(&mut self, count: usize) -> Vec<serde_json::Value> {
        self.peer.lines(count).await
    }
}

fn bot_subscription(id: &str, provider: &str, url: &str) -> Subscription {
    let mut sub = webhook_subscription(id, "app-bots", url);
    sub.channel = provider.to_owned();
    sub.destination
        .headers
        .insert("secret".to_owned(), SECRET.to_owned());
    sub
}

async fn delivers_signed_messages(provider: &str) {
    let kafka = TestKafka::new(&format!("bot-{provider}"));
    let names = TopicNames::with_prefix(kafka.prefix()).unwrap();
    let mut receiver = BotReceiver::start().await;
    let mut config = test_config(&kafka, &[200]);
    config.channel = provider.to_owned();
    herald_deliver::ensure_topics(&config).await.unwrap();
    let sub = bot_subscription("sub-bot", provider, &receiver.url(provider, "ok"));
    put_subscriptions(&kafka, &names, std::slice::from_ref(&sub));
    let service = RunningDeliverer::start(config).unwrap();
    let ns: Vec<_> = (0..3).map(|i| notification(&sub, provider, i)).collect();
    produce_notifications(&kafka, &names, &ns);

    let seen = receiver.requests(ns.len()).await;
    for request in &seen {
        assert_eq!(request["verified"], true, "{request}");
        assert_eq!(request["provider"], provider);
    }
    let mut texts: Vec<String> = seen
        .iter()
        .map(|r| r["text"].as_str().unwrap().to_owned())
        .collect();
    texts.sort();
    for (text, n) in texts.iter().zip(&ns) {
        assert!(
            text.starts_with(&format!("order.paid ({})", n.event_id)),
            "{text}"
        );
    }
    service.stop().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_gets_incoming_webhook_messages() {
    delivers_signed_messages("slack").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feishu_gets_signed_text_messages() {
    delivers_signed_messages("feishu").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dingtalk_gets_signed_text_messages() {
    delivers_signed_messages("dingtalk").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wecom_gets_group_bot_messages() {
    delivers_signed_messages("wecom").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_that_no_longer_exists_is_dead_lettered_as_gone() {
    let provider = "wecom";
    let kafka = TestKafka::new("bot-gone");
    let names = TopicNames::with_prefix(kafka.prefix()).unwrap();
    let mut receiver = BotReceiver::start().await;
    let mut config = test_config(&kafka, &[200]);
    config.channel = provider.to_owned();
    herald_deliver::ensure_topics(&config).await.unwrap();
    let sub = bot_subscription("sub-gone", provider, &receiver.url(provider, "gone"));
    put_subscriptions(&kafka, &names, std::slice::from_ref(&sub));
    let service = RunningDeliverer::start(config).unwrap();
    let n = notification(&sub, "gone", 1);
    produce_notifications(&kafka, &names, std::slice::from_ref(&n));
    let seen = receiver.requests(1).await;
    assert_eq!(seen[0]["verified"], true, "{}", seen[0]);

    let letter = first_dead_letter(&kafka, &names, provider).await;
    assert_eq!(letter.kind, "gone");
    assert!(letter.error.contains("93000"), "{}", letter.error);
    assert_eq!(
        letter.notification.map(|n| n.notification_id),
        Some(n.notification_id)
    );
    service.stop().unwrap();
}
