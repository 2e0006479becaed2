//! The router's view of `herald.subscriptions`: loaded up to the topic's end before routing
//! starts, then kept current by a thread that applies each change as it arrives.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};

use herald_contract::RecordCodec;
use herald_core::{Subscription, SubscriptionIndex};
use herald_kafka::{KafkaConfig, KafkaError, ReadRecord, follow};

use crate::metrics::RouterMetrics;

/// The shared, live subscription index.
#[derive(Clone, Default)]
pub struct SubscriptionStore {
    index: Arc<RwLock<SubscriptionIndex>>,
}

impl SubscriptionStore {
    /// Runs `f` with the index, read-locked.
    pub fn read<T>(&self, f: impl FnOnce(&SubscriptionIndex) -> T) -> T {
        f(&self.index.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Adds or replaces a compiled subscription (the test kit fills stores directly).
    #[cfg(feature = "testkit")]
    pub(crate) fn upsert(&self, sub: Arc<herald_core::subscription::CompiledSubscription>) {
        self.index
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .upsert(sub);
    }

    /// A store holding only subscription `id` of this one, if it is here.
    pub fn only(&self, id: &str) -> Option<SubscriptionStore> {
        let sub = self.read(|index| index.get(id).cloned())?;
        let store = SubscriptionStore::default();
        store
            .index
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .upsert(sub);
        Some(store)
    }

    /// Applies one record of `herald.subscriptions`: a tombstone deletes, a value upserts.
    /// A record that does not decode or compile is logged and counted, and the previous
    /// version of that subscription is dropped rather than left running on stale rules.
    fn apply(&self, codec: &RecordCodec, record: &ReadRecord, metrics: &RouterMetrics) {
        let key = record
            .key
            .as_deref()
            .map(String::from_utf8_lossy)
            .unwrap_or_default()
            .into_owned();
        let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
        match &record.value {
            None => {
                index.remove(&key);
            }
            Some(bytes) => match codec
                .decode::<Subscription>(bytes)
                .map_err(|e| e.to_string())
                .and_then(|s| s.compile().map_err(|e| e.to_string()))
            {
                Ok(compiled) => index.upsert(compiled),
                Err(error) => {
                    metrics.subscription_errors.inc();
                    tracing::error!(
                        %error,
                        key,
                        partition = record.partition,
                        offset = record.offset,
                        "subscription record refused; the subscription is removed"
                    );
                    index.remove(&key);
                }
            },
        }
        metrics.subscriptions.set(index.len() as i64);
    }
}

/// Loads the subscriptions topic up to its end, then follows it on a thread of its own until
/// `stop` is set.
pub fn load_and_follow(
    kafka: &KafkaConfig,
    topic: &str,
    metrics: Arc<RouterMetrics>,
    stop: Arc<AtomicBool>,
) -> Result<(SubscriptionStore, std::thread::JoinHandle<()>), KafkaError> {
    let store = SubscriptionStore::default();
    let codec = RecordCodec::subscription();
    let live = store.clone();
    let handle = follow::load_then_follow(kafka, topic, stop, move |record| {
        live.apply(&codec, record, &metrics)
    })?;
    tracing::info!(
        subscriptions = store.read(SubscriptionIndex::len),
        "subscriptions loaded"
    );
    Ok((store, handle))
}
