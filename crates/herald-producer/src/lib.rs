//! A producer of Herald events for upstream Rust services (and for `herald produce`): JSON data
//! in; Avro encoded with the schema registered for the topic, Confluent framing, CloudEvents
//! binary-mode headers and a W3C `traceparent` out.
//!
//! ```no_run
//! # async fn demo(producer: herald_producer::EventProducer) -> Result<(), herald_producer::ProduceError> {
//! let data = serde_json::json!({"order_id": "o-1", "tenant_id": "m-1"});
//! producer.produce(herald_producer::OutgoingEvent::new("order.paid", &data).key("o-1")).await?;
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use herald_contract::cloudevents::Attributes;
use herald_contract::encode::{EncodeError, encode_event};
use herald_contract::registry::{LatestSchema, RegistryClient, RegistryError};
use herald_contract::subjects::{SubjectStrategy, event_topic};
use herald_contract::{Catalog, framing};
use herald_kafka::{KafkaConfig, KafkaError, Landed, RecordProducer};
use serde_json::Value as Json;

/// Why an event was not produced.
#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    /// The catalogue has no schema for the event type (RecordNameStrategy needs one).
    #[error("no schema in the catalogue stands for event type {0:?}")]
    UnknownEventType(String),
    /// The data does not fit the schema.
    #[error("the data of {event_type} does not fit subject {subject}: {error}")]
    Encode {
        /// The event type.
        event_type: String,
        /// The subject whose schema was used.
        subject: String,
        /// Where and why.
        error: EncodeError,
    },
    /// The registry failed or has no such subject.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// Kafka refused the record.
    #[error(transparent)]
    Kafka(#[from] KafkaError),
}

/// One event to produce.
#[derive(Debug, Clone)]
pub struct OutgoingEvent<'a> {
    /// The event type, e.g. `order.paid`.
    pub event_type: &'a str,
    /// The data, as JSON that fits the event's schema.
    pub data: &'a Json,
    /// The topic; `events.<domain>` when unset.
    pub topic: Option<String>,
    /// The record key (the entity id, so one entity's events stay in order).
    pub key: Option<String>,
    /// `ce_id`; a fresh UUID when unset.
    pub id: Option<String>,
    /// `ce_subject`.
    pub subject: Option<String>,
    /// `ce_tenant`.
    pub tenant: Option<String>,
    /// `ce_recipient`, for point-to-point events.
    pub recipient: Option<String>,
    /// `ce_broadcast`: a channel name, or `*`, for platform announcements to every app with a
    /// subscription on that channel.
    pub broadcast: Option<String>,
    /// `traceparent`; a new trace when unset.
    pub traceparent: Option<String>,
}

impl<'a> OutgoingEvent<'a> {
    /// An event of `event_type` carrying `data`, with every optional attribute unset.
    pub fn new(event_type: &'a str, data: &'a Json) -> Self {
        Self {
            event_type,
            data,
            topic: None,
            key: None,
            id: None,
            subject: None,
            tenant: None,
            recipient: None,
            broadcast: None,
            traceparent: None,
        }
    }

    /// Sets the record key.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sets the topic.
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.topic = Some(topic.into());
        self
    }

    /// Sets `ce_id`.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }
}

/// Where an event landed and under which id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Produced {
    /// The topic.
    pub topic: String,
    /// Partition and offset.
    pub landed: Landed,
    /// The event's `ce_id`.
    pub id: String,
    /// The registry id of the schema it was encoded with; `None` in single-object encoding.
    pub schema_id: Option<u32>,
}

/// Produces events; cheap to clone.
#[derive(Clone)]
pub struct EventProducer {
    records: RecordProducer,
    /// `None`: no registry; events are written in Avro single-object encoding with the
    /// catalogue's schema, which readers resolve by fingerprint.
    registry: Option<RegistryClient>,
    catalog: Arc<Catalog>,
    strategy: SubjectStrategy,
    source: String,
    /// Latest schema per subject, looked up once per subject for the producer's life (a new
    /// schema version is picked up by a new producer, as Confluent's serializers do).
    latest: Arc<Mutex<HashMap<String, LatestSchema>>>,
}

impl EventProducer {
    /// A producer that writes through `kafka`, encodes with the schemas registered in
    /// `registry`, and sets `ce_source` to `source`.
    pub fn new(
        kafka: &KafkaConfig,
        registry: RegistryClient,
        catalog: Arc<Catalog>,
        strategy: SubjectStrategy,
        source: impl Into<String>,
    ) -> Result<Self, ProduceError> {
        Ok(Self {
            records: RecordProducer::new(kafka)?,
            registry: Some(registry),
            catalog,
            strategy,
            source: source.into(),
            latest: Arc::default(),
        })
    }

    /// A producer without a schema registry (`herald dev`, platforms that have none): events
    /// are encoded with the catalogue's schema for their type in Avro single-object encoding,
    /// which Herald's decoder resolves by the schema's fingerprint.
    pub fn single_object(
        kafka: &KafkaConfig,
        catalog: Arc<Catalog>,
        source: impl Into<String>,
    ) -> Result<Self, ProduceError> {
        Ok(Self {
            records: RecordProducer::new(kafka)?,
            registry: None,
            catalog,
            strategy: SubjectStrategy::RecordName,
            source: source.into(),
            latest: Arc::default(),
        })
    }

    /// Encodes and produces one event, waiting for the broker's acknowledgement.
    pub async fn produce(&self, event: OutgoingEvent<'_>) -> Result<Produced, ProduceError> {
        let topic = event
            .topic
            .clone()
            .unwrap_or_else(|| event_topic(event.event_type));
        let subject = match self.strategy {
            SubjectStrategy::TopicName => format!("{topic}-value"),
            SubjectStrategy::RecordName => self
                .catalog
                .by_event_type(event.event_type)
                .ok_or_else(|| ProduceError::UnknownEventType(event.event_type.to_owned()))?
                .full_name
                .clone(),
        };
        let (entry, schema_id) = match &self.registry {
            Some(_) => {
                let schema = self.latest_schema(&subject).await?;
                (schema.entry, Some(schema.id))
            }
            None => (
                self.catalog
                    .by_event_type(event.event_type)
                    .ok_or_else(|| ProduceError::UnknownEventType(event.event_type.to_owned()))?
                    .entry
                    .clone(),
                None,
            ),
        };
        let datum = encode_event(&entry, event.event_type, event.data).map_err(|error| {
            ProduceError::Encode {
                event_type: event.event_type.to_owned(),
                subject: subject.clone(),
                error,
            }
        })?;
        let payload = match schema_id {
            Some(id) => framing::confluent(id, &datum),
            None => framing::single_object(entry.fingerprint(), &datum),
        };
        let id = event
            .id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let mut attributes = Attributes {
            specversion: Some("1.0".to_owned()),
            id: Some(id.clone()),
            source: Some(self.source.clone()),
            event_type: Some(event.event_type.to_owned()),
            time: Some(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            subject: event.subject.clone(),
            datacontenttype: Some("application/avro".to_owned()),
            traceparent: Some(event.traceparent.clone().unwrap_or_else(new_traceparent)),
            ..Attributes::default()
        };
        for (name, value) in [
            ("tenant", &event.tenant),
            ("recipient", &event.recipient),
            ("broadcast", &event.broadcast),
        ] {
            if let Some(value) = value {
                attributes.extensions.insert(name.to_owned(), value.clone());
            }
        }
        let landed = self
            .records
            .send(
                &topic,
                event.key.as_deref().map(str::as_bytes),
                Some(&payload),
                &attributes.to_headers(),
            )
            .await?;
        Ok(Produced {
            topic,
            landed,
            id,
            schema_id,
        })
    }

    async fn latest_schema(&self, subject: &str) -> Result<LatestSchema, ProduceError> {
        if let Some(found) = self.lock().get(subject) {
            return Ok(found.clone());
        }
        let registry = self
            .registry
            .as_ref()
            .expect("only producers with a registry look schemas up");
        let found = registry.latest(subject).await?;
        self.lock().insert(subject.to_owned(), found.clone());
        Ok(found)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, LatestSchema>> {
        // Single inserts and reads only: a poisoned map is still consistent.
        self.latest
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A W3C trace-context `traceparent` starting a new, sampled trace.
pub fn new_traceparent() -> String {
    let trace = uuid::Uuid::new_v4().simple().to_string();
    let span = &uuid::Uuid::new_v4().simple().to_string()[..16];
    format!("00-{trace}-{span}-01")
}
