//! The admin service's views of `herald.apps` and `herald.subscriptions`: loaded from the
//! beginning at start, then followed. Each view remembers the last offset it applied per
//! partition, so a write can wait until the view has read it back (read-your-writes) before
//! it answers.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use herald_contract::RecordCodec;
use herald_core::Subscription;
use herald_core::app::App;
use herald_core::topics::TopicNames;
use herald_deliver::inbox::auth::ApiKeys;
use herald_deliver::secrets::MasterKey;
use herald_deliver::state::DeliveryState;
use herald_kafka::{KafkaConfig, Landed, ReadRecord, follow};

use crate::AdminError;

/// Apps, subscriptions, API keys and decrypted signing secrets as the topics hold them.
pub struct Views {
    apps: RwLock<BTreeMap<String, App>>,
    subscriptions: RwLock<BTreeMap<String, Subscription>>,
    keys: ApiKeys,
    delivery: DeliveryState,
    master_key: MasterKey,
    app_codec: RecordCodec,
    subscription_codec: RecordCodec,
    /// (topic, partition) → the next offset to apply.
    applied: RwLock<HashMap<(String, i32), i64>>,
    /// Ticks after every applied record, waking writers waiting to read themselves back.
    tick: tokio::sync::watch::Sender<u64>,
}

impl Views {
    /// Empty views; `master_key` decrypts signing secrets for test sends.
    pub fn new(master_key: MasterKey) -> Self {
        Self {
            apps: RwLock::default(),
            subscriptions: RwLock::default(),
            keys: ApiKeys::default(),
            delivery: DeliveryState::default(),
            master_key,
            app_codec: RecordCodec::builtin("dev.herald.App"),
            subscription_codec: RecordCodec::subscription(),
            applied: RwLock::default(),
            tick: tokio::sync::watch::channel(0).0,
        }
    }

    /// The API keys of every app.
    pub fn keys(&self) -> &ApiKeys {
        &self.keys
    }

    /// Subscriptions with their apps' decrypted secrets, as a delivery needs them.
    pub fn delivery(&self) -> &DeliveryState {
        &self.delivery
    }

    /// The app `id`.
    pub fn app(&self, id: &str) -> Option<App> {
        read(&self.apps).get(id).cloned()
    }

    /// Every app, in id order.
    pub fn apps(&self) -> Vec<App> {
        read(&self.apps).values().cloned().collect()
    }

    /// The subscription `id`.
    pub fn subscription(&self, id: &str) -> Option<Subscription> {
        read(&self.subscriptions).get(id).cloned()
    }

    /// Every subscription that `keep` keeps, in id order.
    pub fn subscriptions(&self, keep: impl Fn(&Subscription) -> bool) -> Vec<Subscription> {
        read(&self.subscriptions)
            .values()
            .filter(|s| keep(s))
            .cloned()
            .collect()
    }

    /// Applies a record of `herald.apps`.
    pub fn apply_app(&self, record: &ReadRecord) {
        self.keys.apply(&self.app_codec, record);
        self.delivery
            .apply_app(&self.app_codec, Some(&self.master_key), record);
        let key = key_of(record);
        let mut apps = self.apps.write().unwrap_or_else(|e| e.into_inner());
        match record
            .value
            .as_deref()
            .map(|v| self.app_codec.decode::<App>(v))
        {
            Some(Ok(app)) => {
                apps.insert(key, app);
            }
            None => {
                apps.remove(&key);
            }
            Some(Err(error)) => {
                tracing::error!(%error, key, "app record refused; the app is hidden");
                apps.remove(&key);
            }
        }
        drop(apps);
        self.applied(record);
    }

    /// Applies a record of `herald.subscriptions`.
    pub fn apply_subscription(&self, record: &ReadRecord) {
        self.delivery
            .apply_subscription(&self.subscription_codec, record);
        let key = key_of(record);
        let mut all = self
            .subscriptions
            .write()
            .unwrap_or_else(|e| e.into_inner());
        match record
            .value
            .as_deref()
            .map(|v| self.subscription_codec.decode::<Subscription>(v))
        {
            Some(Ok(subscription)) => {
                all.insert(key, subscription);
            }
            None => {
                all.remove(&key);
            }
            Some(Err(error)) => {
                tracing::error!(%error, key, "subscription record refused; it is hidden");
                all.remove(&key);
            }
        }
        drop(all);
        self.applied(record);
    }

    fn applied(&self, record: &ReadRecord) {
        self.applied
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert((record.topic.clone(), record.partition), record.offset + 1);
        self.tick.send_modify(|n| *n += 1);
    }

    fn has_applied(&self, topic: &str, landed: Landed) -> bool {
        read(&self.applied)
            .get(&(topic.to_owned(), landed.partition))
            .is_some_and(|next| *next > landed.offset)
    }

    /// Waits until the record written at `landed` in `topic` has been applied; false when
    /// `timeout` passes first.
    pub async fn wait_for(&self, topic: &str, landed: Landed, timeout: Duration) -> bool {
        let mut ticks = self.tick.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.has_applied(topic, landed) {
                return true;
            }
            match tokio::time::timeout_at(deadline, ticks.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return self.has_applied(topic, landed),
            }
        }
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn key_of(record: &ReadRecord) -> String {
    record
        .key
        .as_deref()
        .map(String::from_utf8_lossy)
        .unwrap_or_default()
        .into_owned()
}

/// Loads both topics into `views` and follows them until `stop` is set. Blocks until loaded.
pub fn follow(
    kafka: &KafkaConfig,
    names: &TopicNames,
    views: Arc<Views>,
    stop: Arc<AtomicBool>,
) -> Result<Vec<std::thread::JoinHandle<()>>, AdminError> {
    let apps = {
        let views = views.clone();
        follow::load_then_follow(kafka, &names.apps(), stop.clone(), move |r| {
            views.apply_app(r)
        })?
    };
    let subscriptions = follow::load_then_follow(kafka, &names.subscriptions(), stop, move |r| {
        views.apply_subscription(r)
    })?;
    Ok(vec![apps, subscriptions])
}
