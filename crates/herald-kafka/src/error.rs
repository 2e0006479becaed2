//! Typed errors of the Kafka layer.

use rdkafka::types::RDKafkaErrorCode;

/// What went wrong talking to Kafka.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// librdkafka refused a configuration or a request.
    #[error("kafka client error: {0}")]
    Client(#[from] rdkafka::error::KafkaError),
    /// The broker refused an operation on one topic.
    #[error("kafka refused {operation} on topic {topic:?}: {code}")]
    Topic {
        /// What was attempted (`create`, `delete`).
        operation: &'static str,
        /// The topic concerned.
        topic: String,
        /// The broker's error code.
        code: RDKafkaErrorCode,
    },
    /// The cluster did not reach the expected state in time.
    #[error("timed out after {waited_ms} ms waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long it was awaited.
        waited_ms: u128,
    },
    /// A request that cannot be carried out as asked.
    #[error("{0}")]
    Invalid(String),
}

impl KafkaError {
    /// Whether the broker answered that the topic does not exist: for readers to whom a
    /// missing topic (a dead-letter topic nothing was ever written to) means "empty".
    pub fn is_unknown_topic(&self) -> bool {
        matches!(
            self,
            Self::Topic {
                code: RDKafkaErrorCode::UnknownTopicOrPartition,
                ..
            }
        )
    }
}
