//! Proof that the broker under test is real: the transactional guarantees Herald's exactly-once
//! claims rest on hold on it.
//!
//! Each guarantee is a check function returning `Err` with what it saw when the guarantee does
//! not hold. The real-broker tests require `Ok`; `librdkafkas_mock_cluster_fails_every_check`
//! runs the same functions against librdkafka's mock cluster and requires `Err` from each, so
//! the checks demonstrably can fail and a mock cannot pass for the broker.

use std::time::{Duration, Instant};

use herald_kafka::rdkafka::consumer::Consumer;
use herald_kafka::rdkafka::message::Message;
use herald_kafka::rdkafka::mocking::MockCluster;
use herald_kafka::rdkafka::producer::{BaseRecord, Producer};
use herald_kafka::rdkafka::{Offset, TopicPartitionList};
use herald_kafka::testkit::{Isolation, OutgoingRecord, TestKafka};

const TXN_TIMEOUT: Duration = Duration::from_secs(30);
const READ_TIMEOUT: Duration = Duration::from_secs(30);

fn send_values(
    producer: &herald_kafka::rdkafka::producer::BaseProducer,
    topic: &str,
    values: &[String],
) -> Result<(), String> {
    for value in values {
        producer
            .send(BaseRecord::to(topic).key("k").payload(value))
            .map_err(|(e, _)| format!("send: {e}"))?;
    }
    producer
        .flush(TXN_TIMEOUT)
        .map_err(|e| format!("flush: {e}"))
}

/// An aborted transaction's records are invisible to `read_committed` readers and a committed
/// one's are visible.
fn check_aborted_hidden_committed_visible(kafka: &TestKafka, topic: &str) -> Result<(), String> {
    let producer = kafka.transactional_producer(&kafka.group("visibility-txn"));
    let aborted: Vec<String> = (0..3).map(|i| format!("aborted-{i}")).collect();
    let committed: Vec<String> = (0..3).map(|i| format!("committed-{i}")).collect();

    producer.begin_transaction().map_err(|e| e.to_string())?;
    // Flushed before the abort so the records really are in the log, only marked aborted.
    send_values(&producer, topic, &aborted)?;
    producer
        .abort_transaction(TXN_TIMEOUT)
        .map_err(|e| format!("abort: {e}"))?;
    producer.begin_transaction().map_err(|e| e.to_string())?;
    send_values(&producer, topic, &committed)?;
    producer
        .commit_transaction(TXN_TIMEOUT)
        .map_err(|e| format!("commit: {e}"))?;

    let everything = kafka.read_topic(topic, Isolation::ReadUncommitted, 6, READ_TIMEOUT);
    if everything.len() != 6 {
        return Err(format!(
            "read_uncommitted saw {} records, expected all 6 written",
            everything.len()
        ));
    }
    // The committed records follow the aborted ones in the log, so once they are visible the
    // aborted ones have been decided too: this read cannot pass by arriving too early.
    let seen: Vec<String> = kafka
        .read_topic(topic, Isolation::ReadCommitted, 3, READ_TIMEOUT)
        .iter()
        .map(|r| r.value_str().to_owned())
        .collect();
    if seen != committed {
        return Err(format!(
            "read_committed saw {seen:?}, expected only {committed:?}"
        ));
    }
    Ok(())
}

/// `send_offsets_to_transaction` + commit stores the consumer group's offset, read back from
/// the group coordinator by a client outside the group.
fn check_offsets_stored_with_transaction(
    kafka: &TestKafka,
    input: &str,
    output: &str,
) -> Result<(), String> {
    let inputs: Vec<(String, String)> = (0..5)
        .map(|i| (format!("k{i}"), format!("in-{i}")))
        .collect();
    let borrowed: Vec<OutgoingRecord<'_>> = inputs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str(), &[][..]))
        .collect();
    kafka.produce(input, &borrowed);

    let group = kafka.group("offsets");
    let consumer = kafka.consumer(&group, Isolation::ReadCommitted);
    consumer.subscribe(&[input]).map_err(|e| e.to_string())?;
    let mut read = Vec::new();
    let started = Instant::now();
    while read.len() < inputs.len() && started.elapsed() < READ_TIMEOUT * 2 {
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            let message = message.map_err(|e| format!("poll: {e}"))?;
            read.push((
                message.offset(),
                message.payload().map(<[u8]>::to_vec).unwrap_or_default(),
            ));
        }
    }
    if read.len() != inputs.len() {
        return Err(format!(
            "the consumer read {} of 5 input records",
            read.len()
        ));
    }
    let next_offset = read
        .iter()
        .map(|(offset, _)| offset)
        .max()
        .copied()
        .unwrap_or(-1)
        + 1;

    let producer = kafka.transactional_producer(&kafka.group("offsets-txn"));
    producer.begin_transaction().map_err(|e| e.to_string())?;
    for (_, payload) in &read {
        producer
            .send(BaseRecord::<(), _>::to(output).payload(payload))
            .map_err(|(e, _)| format!("send: {e}"))?;
    }
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset(input, 0, Offset::Offset(next_offset))
        .map_err(|e| e.to_string())?;
    let group_metadata = consumer
        .group_metadata()
        .ok_or("the consumer has no group metadata")?;
    producer
        .send_offsets_to_transaction(&offsets, &group_metadata, TXN_TIMEOUT)
        .map_err(|e| format!("send_offsets_to_transaction: {e}"))?;
    producer
        .commit_transaction(TXN_TIMEOUT)
        .map_err(|e| format!("commit: {e}"))?;

    let stored = kafka
        .admin()
        .committed_offsets(&group, input, 1)
        .map_err(|e| format!("reading the group's offsets: {e}"))?;
    if stored != vec![Some(next_offset)] {
        return Err(format!(
            "group {group} has committed {stored:?} on {input}, expected [Some({next_offset})]"
        ));
    }
    let outputs = kafka.read_topic(output, Isolation::ReadCommitted, 5, READ_TIMEOUT);
    if outputs.len() != 5 {
        return Err(format!(
            "read_committed saw {} of 5 output records",
            outputs.len()
        ));
    }
    Ok(())
}

/// A second producer with the same `transactional.id` fences the first: the zombie's commit
/// fails instead of writing duplicates.
fn check_zombie_producer_is_fenced(kafka: &TestKafka, topic: &str) -> Result<(), String> {
    let txn_id = kafka.group("fencing-txn");
    let zombie = kafka.transactional_producer(&txn_id);
    zombie.begin_transaction().map_err(|e| e.to_string())?;
    send_values(&zombie, topic, &["from-zombie".to_owned()])?;

    let successor = kafka.transactional_producer(&txn_id);
    successor.begin_transaction().map_err(|e| e.to_string())?;
    send_values(&successor, topic, &["from-successor".to_owned()])?;
    successor
        .commit_transaction(TXN_TIMEOUT)
        .map_err(|e| format!("successor commit: {e}"))?;

    if zombie.commit_transaction(TXN_TIMEOUT).is_ok() {
        return Err("the zombie producer committed after being fenced".to_owned());
    }
    let seen: Vec<String> = kafka
        .read_topic(topic, Isolation::ReadCommitted, 1, READ_TIMEOUT)
        .iter()
        .map(|r| r.value_str().to_owned())
        .collect();
    if seen != ["from-successor"] {
        return Err(format!(
            "read_committed saw {seen:?}, expected only the successor's record"
        ));
    }
    Ok(())
}

#[tokio::test]
async fn aborted_transactions_are_hidden_and_committed_ones_visible() {
    let kafka = TestKafka::new("txn-visibility");
    let topic = kafka.create_topic("out", 1).await;
    check_aborted_hidden_committed_visible(&kafka, &topic)
        .expect("the broker hides aborted records");
}

#[tokio::test]
async fn send_offsets_to_transaction_stores_the_group_offset() {
    let kafka = TestKafka::new("txn-offsets");
    let input = kafka.create_topic("in", 1).await;
    let output = kafka.create_topic("out", 1).await;
    check_offsets_stored_with_transaction(&kafka, &input, &output)
        .expect("the broker stores transactional offsets");
}

#[tokio::test]
async fn a_zombie_transactional_producer_is_fenced() {
    let kafka = TestKafka::new("txn-fencing");
    let topic = kafka.create_topic("out", 1).await;
    check_zombie_producer_is_fenced(&kafka, &topic).expect("the broker fences zombies");
}

/// The mock cluster lacks exactly what the checks test; if this test ever fails, either the
/// mock has learned transactions or the checks have stopped checking.
#[test]
fn librdkafkas_mock_cluster_fails_every_check() {
    let mock = MockCluster::new(1).expect("the mock cluster starts");
    let kafka = TestKafka::with_brokers(&mock.bootstrap_servers(), "mock");
    for suffix in ["visibility", "in", "out", "fencing"] {
        mock.create_topic(&kafka.topic(suffix), 1, 1)
            .expect("mock topic");
    }

    let visibility = check_aborted_hidden_committed_visible(&kafka, &kafka.topic("visibility"));
    assert!(visibility.is_err(), "the mock passed the visibility check");
    let offsets =
        check_offsets_stored_with_transaction(&kafka, &kafka.topic("in"), &kafka.topic("out"));
    assert!(offsets.is_err(), "the mock passed the offsets check");
    let fencing = check_zombie_producer_is_fenced(&kafka, &kafka.topic("fencing"));
    assert!(fencing.is_err(), "the mock passed the fencing check");
}
