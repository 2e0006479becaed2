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

    /// Produces `records` in order (librdkafka keeps the order per partition) and waits for
    /// every acknowledgement; returns how many were written.
    pub async fn send_all(&self, records: &[crate::OutRecord]) -> Result<usize, KafkaError> {
        let mut deliveries = Vec::with_capacity(records.len());
        for out in records {
            let headers = out
                .headers
                .iter()
                .fold(OwnedHeaders::new(), |all, (name, value)| {
                    all.insert(Header {
                        key: name,
                        value: Some(value),
                    })
                });
            let mut record = FutureRecord::<[u8], [u8]>::to(&out.topic).headers(headers);
            if let Some(payload) = &out.value {
                record = record.payload(payload);
            }
            if let Some(key) = &out.key {
                record = record.key(key);
            }
            // Enqueued now, in order; when the queue is full, what was enqueued is awaited
            // first, which makes room.
            let mut pending = record;
            loop {
                match self.inner.send_result(pending) {
                    Ok(delivery) => {
                        deliveries.push(delivery);
                        break;
                    }
                    Err((
                        rdkafka::error::KafkaError::MessageProduction(
                            rdkafka::types::RDKafkaErrorCode::QueueFull,
                        ),
                        back,
                    )) if !deliveries.is_empty() => {
                        pending = back;
                        await_deliveries(std::mem::take(&mut deliveries)).await?;
                    }
                    Err((error, _)) => return Err(KafkaError::Client(error)),
                }
            }
        }
        await_deliveries(deliveries).await?;
        Ok(records.len())
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

/// Waits for every delivery report; the first failure is the error.
async fn await_deliveries(
    deliveries: Vec<rdkafka::producer::DeliveryFuture>,
) -> Result<(), KafkaError> {
    for delivery in deliveries {
        match delivery.await {
            Ok(Ok(_)) => {}
            Ok(Err((error, _))) => return Err(KafkaError::Client(error)),
            Err(_) => {
                return Err(KafkaError::Invalid(
                    "the producer was dropped before a delivery report".to_owned(),
                ));
            }
        }
    }
    Ok(())
}
