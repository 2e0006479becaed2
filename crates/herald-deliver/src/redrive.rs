//! Dead letters, listed and redriven: `herald dlq list | redrive --channel <name>`.
//!
//! A redrive writes dead-lettered notifications back to the channel's topic with their attempt
//! count reset and their notification id kept, so receivers that saw an earlier attempt can
//! still deduplicate. Records that are not notifications (dead-lettered as `undecodable`) are
//! listed but never redriven: they would only fail again.

use std::time::Duration;

use herald_contract::RecordCodec;
use herald_contract::records::encode_notification;
use herald_core::Notification;
use herald_core::topics::{ChannelName, TopicNames};
use herald_kafka::reader::{Isolation, ReadOptions, read_from_beginning};
use herald_kafka::{KafkaConfig, KafkaError, ReadRecord, RecordProducer};

/// One dead letter.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// Where it lies in the DLQ.
    pub partition: i32,
    /// Its offset there.
    pub offset: i64,
    /// The notification, when the record is one.
    pub notification: Option<Notification>,
    /// `herald-error-kind`.
    pub kind: String,
    /// `herald-error`.
    pub error: String,
    /// `herald-attempt`.
    pub attempts: Option<i32>,
    /// `herald-failed-at`, epoch milliseconds.
    pub failed_at: Option<i64>,
}

fn header_text(record: &ReadRecord, name: &str) -> Option<String> {
    record
        .header(name)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// Reads the channel's DLQ (committed records) from its beginning to its end.
pub fn list(
    kafka: &KafkaConfig,
    names: &TopicNames,
    channel: &ChannelName,
) -> Result<Vec<DeadLetter>, KafkaError> {
    let codec = RecordCodec::notification();
    let group = format!("{}-dlq-reader", names.prefix());
    let records = read_from_beginning(
        kafka,
        &group,
        &names.notify_dlq(channel),
        ReadOptions {
            isolation: Isolation::ReadCommitted,
            min_records: 0,
            max_records: usize::MAX,
            timeout: Duration::from_secs(30),
        },
    )?;
    Ok(records
        .iter()
        .map(|record| DeadLetter {
            partition: record.partition,
            offset: record.offset,
            notification: record
                .value
                .as_deref()
                .and_then(|v| codec.decode::<Notification>(v).ok()),
            kind: header_text(record, "herald-error-kind").unwrap_or_default(),
            error: header_text(record, "herald-error").unwrap_or_default(),
            attempts: header_text(record, "herald-attempt").and_then(|a| a.parse().ok()),
            failed_at: header_text(record, "herald-failed-at").and_then(|a| a.parse().ok()),
        })
        .collect())
}

/// Writes the dead letters `select` picks back to the channel's topic, attempts reset and ids
/// kept; returns how many it wrote.
pub async fn redrive(
    kafka: &KafkaConfig,
    names: &TopicNames,
    channel: &ChannelName,
    select: impl Fn(&DeadLetter) -> bool,
) -> Result<usize, KafkaError> {
    let codec = RecordCodec::notification();
    let producer = RecordProducer::new(kafka)?;
    let topic = names.notify(channel);
    let mut count = 0;
    for letter in list(kafka, names, channel)? {
        let Some(notification) = &letter.notification else {
            continue;
        };
        if !select(&letter) {
            continue;
        }
        let mut fresh = notification.clone();
        fresh.attempt = 0;
        let value =
            encode_notification(&codec, &fresh).expect("a notification that decoded encodes again");
        let headers = vec![(
            "herald-redriven-from".to_owned(),
            format!("{}/{}", letter.partition, letter.offset).into_bytes(),
        )];
        producer
            .send(
                &topic,
                Some(fresh.record_key().as_bytes()),
                Some(&value),
                &headers,
            )
            .await?;
        count += 1;
    }
    Ok(count)
}
