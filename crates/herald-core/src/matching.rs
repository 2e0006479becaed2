//! The subscription index: from an event's type, tenant and routing mode to the subscriptions
//! it concerns, without scanning every subscription.
//!
//! Lookups go event type first (an exact map, then one map probe per dot-separated prefix of
//! the type, then the `*` bucket), then tenant (the event's tenant bucket plus the bucket of
//! subscriptions scoped to every tenant). Filters are evaluated by the caller on what is left,
//! so their cost is paid only for real candidates. Point-to-point events use the recipient
//! app's own subscriptions; broadcasts use the per-channel index of apps.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::subscription::{CompiledSubscription, EventTypePattern};

/// What the index needs to know about an event.
#[derive(Debug, Clone, Copy, Default)]
pub struct EventFacts<'a> {
    /// The event type, e.g. `order.paid`.
    pub event_type: &'a str,
    /// The tenant (resource owner) the event concerns, if any.
    pub tenant: Option<&'a str>,
    /// Point-to-point: the one app the event is for (`ce_recipient`).
    pub recipient: Option<&'a str>,
    /// Broadcast: the channel to announce on, or `*` for every channel (`ce_broadcast`).
    pub broadcast: Option<&'a str>,
}

type ById = BTreeMap<String, Arc<CompiledSubscription>>;

/// Subscriptions of one event-type key, split by tenant scope.
#[derive(Debug, Default)]
struct TenantBuckets {
    /// Subscriptions that see every tenant's events.
    every_tenant: ById,
    /// Subscriptions scoped to listed tenants, by tenant.
    by_tenant: HashMap<String, ById>,
}

impl TenantBuckets {
    fn insert(&mut self, sub: &Arc<CompiledSubscription>) {
        let id = sub.spec.subscription_id.clone();
        match &sub.spec.tenant_scope {
            None => {
                self.every_tenant.insert(id, sub.clone());
            }
            Some(tenants) => {
                for tenant in tenants {
                    self.by_tenant
                        .entry(tenant.clone())
                        .or_default()
                        .insert(id.clone(), sub.clone());
                }
            }
        }
    }

    fn remove(&mut self, sub: &CompiledSubscription) {
        let id = &sub.spec.subscription_id;
        match &sub.spec.tenant_scope {
            None => {
                self.every_tenant.remove(id);
            }
            Some(tenants) => {
                for tenant in tenants {
                    if let Some(bucket) = self.by_tenant.get_mut(tenant) {
                        bucket.remove(id);
                        if bucket.is_empty() {
                            self.by_tenant.remove(tenant);
                        }
                    }
                }
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.every_tenant.is_empty() && self.by_tenant.is_empty()
    }

    fn collect<'s>(&'s self, tenant: Option<&str>, out: &mut Vec<&'s Arc<CompiledSubscription>>) {
        out.extend(self.every_tenant.values());
        if let Some(bucket) = tenant.and_then(|t| self.by_tenant.get(t)) {
            out.extend(bucket.values());
        }
    }
}

/// Every known subscription, indexed for routing. Disabled subscriptions are kept (so that
/// they can be listed) but are in no lookup bucket.
#[derive(Debug, Default)]
pub struct SubscriptionIndex {
    by_id: HashMap<String, Arc<CompiledSubscription>>,
    exact: HashMap<String, TenantBuckets>,
    /// Keyed by the prefix with its trailing dot (`order.` for `order.*`).
    prefix: HashMap<String, TenantBuckets>,
    any: TenantBuckets,
    by_app: HashMap<String, ById>,
    /// channel → app → that app's subscriptions on the channel.
    by_channel: BTreeMap<String, HashMap<String, ById>>,
}

/// Whether a subscription's tenant scope admits `tenant`.
fn tenant_admits(sub: &CompiledSubscription, tenant: Option<&str>) -> bool {
    match (&sub.spec.tenant_scope, tenant) {
        (None, _) => true,
        (Some(scope), Some(tenant)) => scope.iter().any(|t| t == tenant),
        (Some(_), None) => false,
    }
}

impl SubscriptionIndex {
    /// How many subscriptions are known, enabled or not.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether no subscription is known.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The subscription with this id.
    pub fn get(&self, id: &str) -> Option<&Arc<CompiledSubscription>> {
        self.by_id.get(id)
    }

    /// Every subscription, in id order.
    pub fn all(&self) -> Vec<Arc<CompiledSubscription>> {
        let mut all: Vec<_> = self.by_id.values().cloned().collect();
        all.sort_by(|a, b| a.spec.subscription_id.cmp(&b.spec.subscription_id));
        all
    }

    /// Adds a subscription or replaces the one with the same id.
    pub fn upsert(&mut self, sub: Arc<CompiledSubscription>) {
        self.remove(&sub.spec.subscription_id);
        self.by_id
            .insert(sub.spec.subscription_id.clone(), sub.clone());
        if !sub.spec.enabled {
            return;
        }
        for pattern in &sub.patterns {
            match pattern {
                EventTypePattern::Exact(t) => self.exact.entry(t.clone()).or_default().insert(&sub),
                EventTypePattern::Prefix(p) => {
                    self.prefix.entry(p.clone()).or_default().insert(&sub)
                }
                EventTypePattern::Any => self.any.insert(&sub),
            }
        }
        let id = sub.spec.subscription_id.clone();
        self.by_app
            .entry(sub.spec.app_id.clone())
            .or_default()
            .insert(id.clone(), sub.clone());
        self.by_channel
            .entry(sub.spec.channel.clone())
            .or_default()
            .entry(sub.spec.app_id.clone())
            .or_default()
            .insert(id, sub.clone());
    }

    /// Forgets a subscription (a tombstone); returns it if it was known.
    pub fn remove(&mut self, id: &str) -> Option<Arc<CompiledSubscription>> {
        let old = self.by_id.remove(id)?;
        if !old.spec.enabled {
            return Some(old);
        }
        for pattern in &old.patterns {
            let (map, key) = match pattern {
                EventTypePattern::Exact(t) => (&mut self.exact, t),
                EventTypePattern::Prefix(p) => (&mut self.prefix, p),
                EventTypePattern::Any => {
                    self.any.remove(&old);
                    continue;
                }
            };
            if let Some(buckets) = map.get_mut(key) {
                buckets.remove(&old);
                if buckets.is_empty() {
                    map.remove(key);
                }
            }
        }
        remove_nested(&mut self.by_app, &old.spec.app_id, id);
        if let Some(apps) = self.by_channel.get_mut(&old.spec.channel) {
            remove_nested(apps, &old.spec.app_id, id);
            if apps.is_empty() {
                self.by_channel.remove(&old.spec.channel);
            }
        }
        Some(old)
    }

    /// The enabled subscriptions an event concerns before filters, each once, in id order.
    pub fn candidates(&self, event: &EventFacts<'_>) -> Vec<Arc<CompiledSubscription>> {
        self.candidates_borrowed(event)
            .into_iter()
            .cloned()
            .collect()
    }

    /// [`SubscriptionIndex::candidates`], borrowed from the index: the router routes each
    /// event under the index's read lock, so it need not touch the reference counts, which
    /// its routing threads would otherwise contend on for every event.
    pub fn candidates_borrowed(&self, event: &EventFacts<'_>) -> Vec<&Arc<CompiledSubscription>> {
        let mut out = Vec::new();
        if let Some(channel) = event.broadcast {
            // One notification per app per channel: the app's first subscription there.
            for (name, apps) in &self.by_channel {
                if channel == "*" || channel == name {
                    out.extend(apps.values().filter_map(|subs| subs.values().next()));
                }
            }
        } else if let Some(app) = event.recipient {
            if let Some(subs) = self.by_app.get(app) {
                out.extend(
                    subs.values()
                        .filter(|s| s.patterns.iter().any(|p| p.matches(event.event_type)))
                        .filter(|s| tenant_admits(s, event.tenant)),
                );
            }
        } else {
            if let Some(buckets) = self.exact.get(event.event_type) {
                buckets.collect(event.tenant, &mut out);
            }
            for (at, _) in event.event_type.match_indices('.') {
                if let Some(buckets) = self.prefix.get(&event.event_type[..=at]) {
                    buckets.collect(event.tenant, &mut out);
                }
            }
            self.any.collect(event.tenant, &mut out);
        }
        // A subscription with two matching patterns (order.* and order.paid) counts once.
        if out.len() > 1 {
            out.sort_unstable_by(|a, b| a.spec.subscription_id.cmp(&b.spec.subscription_id));
            out.dedup_by(|a, b| Arc::ptr_eq(a, b));
        }
        out
    }
}

/// Removes `id` from the inner map at `key`, and the inner map when it empties.
fn remove_nested(outer: &mut HashMap<String, ById>, key: &str, id: &str) {
    if let Some(inner) = outer.get_mut(key) {
        inner.remove(id);
        if inner.is_empty() {
            outer.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::subscription::Subscription;
    use crate::subscription::tests::webhook;

    fn ids(subs: &[Arc<CompiledSubscription>]) -> Vec<&str> {
        subs.iter()
            .map(|s| s.spec.subscription_id.as_str())
            .collect()
    }

    fn index(subs: Vec<Subscription>) -> SubscriptionIndex {
        let mut index = SubscriptionIndex::default();
        for sub in subs {
            index.upsert(sub.compile().unwrap());
        }
        index
    }

    fn facts<'a>(event_type: &'a str, tenant: Option<&'static str>) -> EventFacts<'a> {
        EventFacts {
            event_type,
            tenant,
            ..EventFacts::default()
        }
    }

    #[test]
    fn exact_prefix_and_any_patterns_match_once_each() {
        let index = index(vec![
            webhook("s-exact", "a", &["order.paid"]),
            webhook("s-prefix", "a", &["order.*"]),
            webhook("s-both", "b", &["order.*", "order.paid"]),
            webhook("s-any", "c", &["*"]),
            webhook("s-user", "c", &["user.registered"]),
        ]);
        let paid = index.candidates(&facts("order.paid", None));
        assert_eq!(ids(&paid), ["s-any", "s-both", "s-exact", "s-prefix"]);
        let user = index.candidates(&facts("user.registered", None));
        assert_eq!(ids(&user), ["s-any", "s-user"]);
    }

    #[test]
    fn tenant_scopes_narrow_the_match() {
        let mut scoped = webhook("s-m7", "a", &["order.*"]);
        scoped.tenant_scope = Some(vec!["m-7".into(), "m-8".into()]);
        let index = index(vec![scoped, webhook("s-all", "b", &["order.*"])]);
        assert_eq!(
            ids(&index.candidates(&facts("order.paid", Some("m-7")))),
            ["s-all", "s-m7"]
        );
        assert_eq!(
            ids(&index.candidates(&facts("order.paid", Some("m-9")))),
            ["s-all"]
        );
        assert_eq!(
            ids(&index.candidates(&facts("order.paid", None))),
            ["s-all"]
        );
    }

    #[test]
    fn point_to_point_reaches_only_the_recipient() {
        let index = index(vec![
            webhook("s-a", "app-a", &["order.paid"]),
            webhook("s-b", "app-b", &["order.paid"]),
            webhook("s-b2", "app-b", &["user.*"]),
        ]);
        let event = EventFacts {
            recipient: Some("app-b"),
            ..facts("order.paid", None)
        };
        assert_eq!(ids(&index.candidates(&event)), ["s-b"]);
    }

    #[test]
    fn broadcast_reaches_each_app_once_per_channel() {
        let mut email = webhook("s-e", "app-a", &["user.*"]);
        email.channel = "email".into();
        email.destination.address = "ops@a.example.com".into();
        let index = index(vec![
            webhook("s-a1", "app-a", &["order.paid"]),
            webhook("s-a2", "app-a", &["user.*"]),
            webhook("s-b", "app-b", &["user.registered"]),
            email,
        ]);
        let on_webhook = EventFacts {
            broadcast: Some("webhook"),
            ..facts("platform.announcement", None)
        };
        assert_eq!(ids(&index.candidates(&on_webhook)), ["s-a1", "s-b"]);
        let everywhere = EventFacts {
            broadcast: Some("*"),
            ..on_webhook
        };
        assert_eq!(ids(&index.candidates(&everywhere)), ["s-a1", "s-b", "s-e"]);
    }

    #[test]
    fn updates_disable_and_delete_take_effect() {
        let mut index = index(vec![webhook("s-1", "a", &["order.paid"])]);
        let mut moved = webhook("s-1", "a", &["user.*"]);
        index.upsert(moved.clone().compile().unwrap());
        assert!(index.candidates(&facts("order.paid", None)).is_empty());
        assert_eq!(index.candidates(&facts("user.registered", None)).len(), 1);
        moved.enabled = false;
        index.upsert(moved.compile().unwrap());
        assert!(index.candidates(&facts("user.registered", None)).is_empty());
        assert_eq!(index.len(), 1);
        assert!(index.remove("s-1").is_some());
        assert!(index.is_empty());
        assert!(index.exact.is_empty() && index.prefix.is_empty() && index.by_app.is_empty());
    }
}
