//! A producer of plain records for crates that must not name rdkafka types: it takes bytes
//! and headers and returns where the record landed.

use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::{KafkaConfig, KafkaError};

/// Where a produced record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Landed {
    /// The partition.
    pub partition: i32,
    /// The offset.
    pub offset: i64,
}

/// An idempotent producer (`acks=all`, ordered retries) of byte records.
#[derive(Clone)]
pub struct RecordProducer {
    inner: FutureProducer,
    queue_timeout: Duration,
}

impl RecordProducer {
    /// Creates the producer; librdkafka connects in the background.
    pub fn new(config: &KafkaConfig) -> Result<Self, KafkaError> {
        let inner = config
            .client_config()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("compression.type", "lz4")
            .set("linger.ms", "5")
            .create()?;
        Ok(Self {
            inner,
            queue_timeout: Duration::from_secs(30),
        })
    }

    /// Produces one record (a tombstone when `payload` is `None`) and waits for the broker's
    /// acknowledgement.
    pub async fn send(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        headers: &[(String, Vec<u8>)],
    ) -> Result<Landed, KafkaError> {
        let headers = headers
            .iter()
            .fold(OwnedHeaders::new(), |all, (name, value)| {
                all.insert(Header {
                    key: name,
                    value: Some(value),
                })
            });
        let mut record = FutureRecord::<[u8], [u8]>::to(topic).headers(headers);
        if let Some(payload) = payload {
            record = record.payload(payload);
        }
        if let Some(key) = key {
            record = record.key(key);
        }
        let delivery = self
            .inner
            .send(record, self.queue_timeout)
            .await
            .map_err(|(error, _)| KafkaError::Client(error))?;
        Ok(Landed {
            partition: delivery.partition,
            offset: delivery.offset,
        })
    }
}
