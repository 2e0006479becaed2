//! The WeChat channel end to end: notifications on the real broker, the delivery service for
//! `wechat`, and a stand-in for WeChat's API (`tests/interop/wechat_api.py`) that issues access
//! tokens, invalidates the first one after one message (as a newer token elsewhere would), and
//! checks each template message's shape.

use std::time::Duration;

use herald_core::Subscription;
use herald_core::topics::TopicNames;
use herald_deliver::channels::wechat::WechatConfig;
use herald_deliver::testkit::{
    PythonPeer, RunningDeliverer, first_dead_letter, notification, produce_notifications,
    put_subscriptions, test_config, webhook_subscription,
};
use herald_kafka::testkit::TestKafka;

fn wechat_subscription(id: &str, openid: &str) -> Subscription {
    let mut sub = webhook_subscription(id, "app-wx", openid);
    sub.channel = "wechat".to_owned();
    sub.destination.template_id = Some("TPL-order-paid".to_owned());
    sub
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_messages_survive_a_revoked_token_and_an_unfollowed_user_is_dead_lettered() {
    let kafka = TestKafka::new("wechat");
    let names = TopicNames::with_prefix(kafka.prefix()).unwrap();
    let mut api = PythonPeer::start("wechat_api.py", &["wx-app-id", "wx-app-secret"]).await;
    let port = api.port;

    let mut config = test_config(&kafka, &[200]);
    config.channel = "wechat".to_owned();
    config.endpoint_concurrency = 1;
    config.wechat = WechatConfig {
        app_id: "wx-app-id".to_owned(),
        app_secret: "wx-app-secret".to_owned(),
        endpoint: Some(format!("http://127.0.0.1:{port}")),
    };
    herald_deliver::ensure_topics(&config).await.unwrap();
    let follower = wechat_subscription("sub-follower", "o-follower");
    let gone = wechat_subscription("sub-unfollowed", "o-unfollowed");
    put_subscriptions(&kafka, &names, &[follower.clone(), gone.clone()]);
    let service = RunningDeliverer::start(config).unwrap();
    let ns: Vec<_> = (0..3).map(|i| notification(&follower, "wx", i)).collect();
    produce_notifications(&kafka, &names, &ns);

    // Every follower message accepted: one per notification, on a valid token.
    let mut log = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let accepted = |log: &[serde_json::Value]| {
        log.iter()
            .filter(|l| l["kind"] == "send" && l["verified"] == true && l["touser"] == "o-follower")
            .count()
    };
    while accepted(&log) < ns.len() {
        log.push(api.next_before(deadline).await);
    }
    let tokens = log.iter().filter(|l| l["kind"] == "token").count();
    let refused = log
        .iter()
        .filter(|l| l["kind"] == "send" && l["error"] == "invalid access_token")
        .count();
    assert_eq!(
        tokens, 2,
        "one token, then one new one after WeChat refused it: {log:?}"
    );
    assert_eq!(refused, 1, "{log:?}");
    let mut orders: Vec<&str> = log
        .iter()
        .filter(|l| l["kind"] == "send" && l["verified"] == true)
        .map(|l| l["data"]["order_id"]["value"].as_str().unwrap())
        .collect();
    orders.sort();
    assert_eq!(orders, ["o-0", "o-1", "o-2"]);
    for line in log.iter().filter(|l| l["kind"] == "send") {
        assert_eq!(line["template_id"], "TPL-order-paid");
    }

    let unfollowed = notification(&gone, "wx", 9);
    produce_notifications(&kafka, &names, std::slice::from_ref(&unfollowed));
    let letter = first_dead_letter(&kafka, &names, "wechat").await;
    assert_eq!(letter.kind, "permanent");
    assert!(letter.error.contains("43004"), "{}", letter.error);
    service.stop().unwrap();
}
