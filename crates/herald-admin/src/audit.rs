//! The audit trail: every change made through the admin API becomes one JSON record in
//! `herald.audit` (keyed by the resource id), written before the change is answered, so an
//! operator can always tell who changed what and when.

use herald_kafka::{KafkaError, RecordProducer};
use serde::Serialize;

use crate::auth::Caller;

/// One change.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct AuditRecord {
    /// When, epoch milliseconds.
    pub at: i64,
    /// Who: `operator` or `app:<id>`.
    pub actor: String,
    /// What: `create`, `update`, `delete`, `enable`, `disable`, `rotate_secret`,
    /// `issue_key`, `revoke_key`, `redrive`, `ingest`, `replay`.
    pub action: String,
    /// The kind of resource: `app`, `subscription`, `dead_letter`, `event`, `replay`.
    pub resource: String,
    /// Its id.
    pub id: String,
    /// Its version after the change, for versioned resources.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
}

/// Writes audit records.
#[derive(Clone)]
pub struct Audit {
    producer: RecordProducer,
    topic: String,
}

impl Audit {
    /// Writes to `topic` through `producer`.
    pub fn new(producer: RecordProducer, topic: String) -> Self {
        Self { producer, topic }
    }

    /// Records one change and waits for the broker's acknowledgement.
    pub async fn record(
        &self,
        caller: &Caller,
        action: &str,
        resource: &str,
        id: &str,
        version: Option<i64>,
    ) -> Result<(), KafkaError> {
        let record = AuditRecord {
            at: herald_core::time::now_ms(),
            actor: caller.actor(),
            action: action.to_owned(),
            resource: resource.to_owned(),
            id: id.to_owned(),
            version,
        };
        let value = serde_json::to_vec(&record).expect("an audit record serializes");
        self.producer
            .send(&self.topic, Some(id.as_bytes()), Some(&value), &[])
            .await
            .map(|_| ())
    }
}
