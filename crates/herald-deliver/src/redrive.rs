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

/// Which dead letters a command concerns; every given condition must hold.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Only this notification id.
    pub notification_id: Option<String>,
    /// Only this kind (`herald-error-kind`: `exhausted`, `permanent`, `gone`, …).
    pub kind: Option<String>,
    /// Only this subscription's.
    pub subscription_id: Option<String>,
    /// Only those dead-lettered at or after this time, epoch milliseconds.
    pub since_ms: Option<i64>,
}

impl Selection {
    /// Whether `letter` is selected. A letter that is not a notification has no id or
    /// subscription, so it is selected only when neither is asked for.
    pub fn matches(&self, letter: &DeadLetter) -> bool {
        let notification = letter.notification.as_ref();
        self.notification_id
            .as_deref()
            .is_none_or(|id| notification.is_some_and(|n| n.notification_id == id))
            && self
                .subscription_id
                .as_deref()
                .is_none_or(|id| notification.is_some_and(|n| n.subscription_id == id))
            && self.kind.as_deref().is_none_or(|kind| letter.kind == kind)
            && self
                .since_ms
                .is_none_or(|since| letter.failed_at.is_some_and(|at| at >= since))
    }
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
    // Reading the DLQ blocks; off the async workers.
    let letters = {
        let (kafka, names, channel) = (kafka.clone(), names.clone(), channel.clone());
        tokio::task::spawn_blocking(move || list(&kafka, &names, &channel))
            .await
            .map_err(|e| KafkaError::Invalid(format!("reading the dead letters: {e}")))??
    };
    for letter in letters {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(id: &str, subscription: &str, kind: &str, failed_at: i64) -> DeadLetter {
        let mut n = crate::testkit::notification(
            &crate::testkit::webhook_subscription(subscription, "app", "https://example.com/"),
            "sel",
            1,
        );
        n.notification_id = id.to_owned();
        DeadLetter {
            partition: 0,
            offset: 0,
            notification: Some(n),
            kind: kind.to_owned(),
            error: String::new(),
            attempts: Some(1),
            failed_at: Some(failed_at),
        }
    }

    #[test]
    fn a_selection_needs_every_condition_it_names() {
        let a = letter("msg_a", "sub-1", "exhausted", 1_000);
        let b = letter("msg_b", "sub-2", "permanent", 2_000);
        let undecodable = DeadLetter {
            notification: None,
            kind: "undecodable".into(),
            failed_at: None,
            ..a.clone()
        };
        let pick = |s: Selection| -> Vec<bool> {
            [&a, &b, &undecodable]
                .iter()
                .map(|l| s.matches(l))
                .collect()
        };
        assert_eq!(pick(Selection::default()), [true, true, true]);
        let by = |f: fn(&mut Selection)| {
            let mut s = Selection::default();
            f(&mut s);
            pick(s)
        };
        assert_eq!(
            by(|s| s.notification_id = Some("msg_b".into())),
            [false, true, false]
        );
        assert_eq!(
            by(|s| s.subscription_id = Some("sub-1".into())),
            [true, false, false]
        );
        assert_eq!(
            by(|s| s.kind = Some("undecodable".into())),
            [false, false, true]
        );
        assert_eq!(by(|s| s.since_ms = Some(1_500)), [false, true, false]);
        let both = Selection {
            kind: Some("exhausted".into()),
            since_ms: Some(1_500),
            ..Selection::default()
        };
        assert_eq!(pick(both), [false, false, false]);
    }
}
