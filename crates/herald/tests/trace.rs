//! Trace context end to end: a `traceparent` set by the producer of an event travels through
//! the router (on the Notification) and the delivery service (as a request header) to the
//! webhook receiver, on the real broker.

use std::time::Duration;

use herald_core::topics::TopicNames;
use herald_deliver::testkit::{Receiver, RunningDeliverer, test_config, webhook_subscription};
use herald_kafka::testkit::TestKafka;
use herald_router::RouterConfig;
use herald_router::testkit::{self, RunningRouter};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_producers_trace_id_reaches_the_webhook_request() {
    let kafka = TestKafka::new("trace");
    let names = TopicNames::with_prefix(kafka.prefix()).unwrap();
    let topic = kafka.create_topic("events.trace", 1).await;
    let deliver = test_config(&kafka, &[200]);
    herald_deliver::ensure_topics(&deliver).await.unwrap();
    testkit::create_subscriptions_topic(&kafka, &names).await;
    let receiver = Receiver::start().await;
    let sub = webhook_subscription("sub-trace", "app-trace", &receiver.url("traced"));
    testkit::put_subscriptions(&kafka, &names, std::slice::from_ref(&sub));

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let traceparent = format!("00-{trace_id}-00f067aa0ba902b7-01");
    let mut event = (0..)
        .map(|i| testkit::event("trace", i))
        .find(|e| e.recipient.is_none() && e.broadcast.is_none())
        .unwrap();
    event
        .headers
        .push(("traceparent".to_owned(), traceparent.clone()));

    let mut config = RouterConfig::new(&kafka.config().brokers);
    config.topic_prefix = kafka.prefix().to_owned();
    config.source_topics = vec![topic.clone()];
    config.notify_partitions = 3;
    let router = tokio::task::spawn_blocking(move || RunningRouter::start(config))
        .await
        .unwrap()
        .expect("router starts");
    let deliverer = RunningDeliverer::start(deliver).expect("deliverer starts");
    let producer = TestKafka::with_brokers(&kafka.config().brokers, "trace-producer");
    let (t, e) = (topic.clone(), event.clone());
    tokio::task::spawn_blocking(move || testkit::produce_events(&producer, &t, &[e]))
        .await
        .unwrap();

    let got = receiver
        .wait_until(Duration::from_secs(60), |got| !got.is_empty())
        .await;
    let header = got[0]
        .headers
        .get("traceparent")
        .expect("the webhook request carries a traceparent");
    assert!(
        header.contains(trace_id),
        "{header} carries the producer's trace id {trace_id}"
    );
    tokio::task::spawn_blocking(move || router.stop())
        .await
        .unwrap()
        .unwrap();
    deliverer.stop().unwrap();
}
