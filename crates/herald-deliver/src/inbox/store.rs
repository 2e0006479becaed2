//! The inbox's view of `herald.notify.inbox` and `herald.inbox.acks`: every unacknowledged
//! notification per app, in arrival order, each with its lease (the visibility timeout of a
//! message handed out and not yet acknowledged). Kafka holds the messages and the
//! acknowledgements; this is rebuilt from them at start.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use herald_core::Notification;
use tokio::sync::watch;

/// One message of an app's inbox.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Its position in the inbox (arrival order); cursors are positions.
    pub seq: u64,
    /// The notification.
    pub notification: Notification,
    /// Hidden from `take` until then: it was handed out and not acknowledged.
    pub leased_until: Option<Instant>,
}

#[derive(Default)]
struct Inner {
    next_seq: u64,
    /// app id → seq → entry; acknowledged entries are removed.
    apps: HashMap<String, BTreeMap<u64, Entry>>,
    /// notification id → (app id, seq), to acknowledge by id.
    by_id: HashMap<String, (String, u64)>,
    /// Acknowledged notification ids, so a message read after its ack is never shown.
    acked: HashSet<String>,
}

/// The inbox store, shared by the followers and the HTTP handlers.
pub struct InboxStore {
    inner: Mutex<Inner>,
    /// Bumped on every new message, so long-polls and streams wake up.
    arrivals: watch::Sender<u64>,
}

impl Default for InboxStore {
    fn default() -> Self {
        Self {
            inner: Mutex::default(),
            arrivals: watch::channel(0).0,
        }
    }
}

impl InboxStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a notification read from the inbox topic, unless it was acknowledged or is
    /// already here (a redelivery of the same id).
    pub fn add(&self, notification: Notification) {
        let mut inner = self.lock();
        if inner.acked.contains(&notification.notification_id)
            || inner.by_id.contains_key(&notification.notification_id)
        {
            return;
        }
        let seq = inner.next_seq;
        inner.next_seq += 1;
        let app = notification.app_id.clone();
        inner
            .by_id
            .insert(notification.notification_id.clone(), (app.clone(), seq));
        inner.apps.entry(app).or_default().insert(
            seq,
            Entry {
                seq,
                notification,
                leased_until: None,
            },
        );
        drop(inner);
        self.arrivals.send_modify(|n| *n += 1);
    }

    /// Records an acknowledgement read from the acks topic (or just written).
    pub fn acknowledge(&self, notification_id: &str) -> bool {
        let mut inner = self.lock();
        inner.acked.insert(notification_id.to_owned());
        match inner.by_id.remove(notification_id) {
            Some((app, seq)) => inner
                .apps
                .get_mut(&app)
                .and_then(|entries| entries.remove(&seq))
                .is_some(),
            None => false,
        }
    }

    /// Whether `notification_id` is a message of `app` still in its inbox.
    pub fn owns(&self, app: &str, notification_id: &str) -> bool {
        self.lock()
            .by_id
            .get(notification_id)
            .is_some_and(|(owner, _)| owner == app)
    }

    /// Up to `limit` visible messages of `app` after `cursor`, leased for `visibility`.
    pub fn take(
        &self,
        app: &str,
        cursor: Option<u64>,
        limit: usize,
        visibility: Duration,
    ) -> Vec<Entry> {
        let now = Instant::now();
        let mut inner = self.lock();
        let Some(entries) = inner.apps.get_mut(app) else {
            return Vec::new();
        };
        let start = cursor.map_or(0, |c| c + 1);
        let mut taken = Vec::new();
        for entry in entries.range_mut(start..).map(|(_, e)| e) {
            if taken.len() >= limit {
                break;
            }
            if entry.leased_until.is_some_and(|until| until > now) {
                continue;
            }
            entry.leased_until = Some(now + visibility);
            taken.push(entry.clone());
        }
        taken
    }

    /// Messages of `app` after `cursor` (leases untouched): what a stream shows.
    pub fn after(&self, app: &str, cursor: Option<u64>) -> Vec<Entry> {
        let inner = self.lock();
        let start = cursor.map_or(0, |c| c + 1);
        inner
            .apps
            .get(app)
            .map(|entries| entries.range(start..).map(|(_, e)| e.clone()).collect())
            .unwrap_or_default()
    }

    /// The latest position handed out so far (a stream that starts now begins after it).
    pub fn last_seq(&self) -> Option<u64> {
        self.lock().next_seq.checked_sub(1)
    }

    /// A receiver that changes whenever a message arrives.
    pub fn arrivals(&self) -> watch::Receiver<u64> {
        self.arrivals.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(id: &str, app: &str) -> Notification {
        let mut n = crate::testkit::notification(
            &crate::testkit::webhook_subscription("s", app, "inbox"),
            "inbox",
            1,
        );
        n.notification_id = id.to_owned();
        n
    }

    #[test]
    fn leases_hide_messages_until_they_expire_and_acks_remove_them_for_good() {
        let store = InboxStore::default();
        store.add(n("m1", "a"));
        store.add(n("m2", "a"));
        store.add(n("m3", "b"));
        store.add(n("m1", "a")); // a redelivery of the same id
        let lease = Duration::from_millis(50);
        let first: Vec<_> = store
            .take("a", None, 10, lease)
            .iter()
            .map(|e| e.notification.notification_id.clone())
            .collect();
        assert_eq!(first, ["m1", "m2"]);
        assert!(store.take("a", None, 10, lease).is_empty(), "leased");
        assert!(store.acknowledge("m1"));
        std::thread::sleep(Duration::from_millis(60));
        let again: Vec<_> = store
            .take("a", None, 10, lease)
            .iter()
            .map(|e| e.notification.notification_id.clone())
            .collect();
        assert_eq!(
            again,
            ["m2"],
            "the unacknowledged one is back, the acknowledged one is not"
        );
        store.add(n("m1", "a"));
        assert!(
            store
                .after("a", None)
                .iter()
                .all(|e| e.notification.notification_id != "m1")
        );
        assert!(store.owns("b", "m3") && !store.owns("a", "m3"));
        let after_m2 = store.take("a", Some(1), 10, lease);
        assert!(after_m2.is_empty(), "nothing after m2");
    }
}
