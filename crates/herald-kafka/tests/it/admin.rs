//! Topic administration against the real broker.

use herald_kafka::testkit::TestKafka;
use herald_kafka::{TopicOutcome, TopicSpec};

#[tokio::test]
async fn ensure_topics_creates_once_and_then_reports_existing() {
    let kafka = TestKafka::new("ensure-topics");
    let name = kafka.topic("compacted");
    let spec = TopicSpec::new(&name, 3).config("cleanup.policy", "compact");

    let first = kafka
        .admin()
        .ensure_topics(std::slice::from_ref(&spec))
        .await
        .expect("create");
    assert_eq!(first, vec![TopicOutcome::Created(name.clone())]);
    let second = kafka
        .admin()
        .ensure_topics(&[spec])
        .await
        .expect("re-create");
    assert_eq!(second, vec![TopicOutcome::AlreadyExisted(name.clone())]);

    kafka.admin().delete_topics(&[&name]).await.expect("delete");
}

#[tokio::test]
async fn cluster_info_names_the_broker_under_test() {
    let kafka = TestKafka::new("cluster-info");
    let info = kafka
        .admin()
        .cluster_info(std::time::Duration::from_secs(10))
        .expect("metadata");
    let brokers: Vec<&str> = info.brokers.iter().map(|(_, addr)| addr.as_str()).collect();
    assert!(
        brokers
            .iter()
            .any(|addr| kafka.config().brokers.contains(addr)),
        "metadata brokers {brokers:?} do not include {}",
        kafka.config().brokers
    );
}

#[tokio::test]
async fn produced_records_are_read_back_with_keys_and_headers() {
    let kafka = TestKafka::new("produce-read");
    let topic = kafka.create_topic("events", 2).await;
    kafka.produce(
        &topic,
        &[
            ("order-1", "paid", &[("ce_type", "order.paid")]),
            ("order-2", "created", &[]),
        ],
    );
    let records = kafka.read_topic(
        &topic,
        herald_kafka::testkit::Isolation::ReadCommitted,
        2,
        std::time::Duration::from_secs(20),
    );
    assert_eq!(records.len(), 2, "{records:?}");
    let paid = records
        .iter()
        .find(|r| r.key.as_deref() == Some(b"order-1".as_slice()))
        .expect("order-1 was read back");
    assert_eq!(paid.value_str(), "paid");
    assert_eq!(
        paid.headers,
        vec![("ce_type".to_owned(), Some(b"order.paid".to_vec()))]
    );
}
