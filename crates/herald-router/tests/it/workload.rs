//! 10,000 events of four types, 50 subscriptions with wildcards, tenant scopes, CEL filters and
//! all three routing modes: the router writes exactly the multiset of Notifications the
//! oracle expects, each with its derived id, its destination key and the event as payload.

use std::collections::BTreeMap;
use std::time::Duration;

use herald_contract::RecordCodec;
use herald_core::{Notification, notification_id};
use herald_router::testkit::{self, RunningRouter};

use crate::{Setup, by_channel};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_events_fan_out_to_exactly_the_expected_notifications() {
    let setup = Setup::new("router-workload", 4).await;
    let subs = testkit::subscriptions(50);
    let events: Vec<_> = (0..10_000).map(|i| testkit::event("w", i)).collect();
    let expected = testkit::expected(&subs, &events);
    let expected_by_channel = by_channel(&expected, &subs);
    // The workload must exercise what it claims to, or an equal result proves little.
    assert!(
        events.iter().any(|e| e.recipient.is_some())
            && events.iter().any(|e| e.broadcast.is_some())
    );
    assert_eq!(
        expected_by_channel.len(),
        2,
        "both channels receive notifications"
    );
    assert!(
        expected.len() > events.len(),
        "fan-out exceeds one per event"
    );

    // Subscriptions first: the router must load them all before it routes anything.
    setup.put_subscriptions(&subs);
    setup.produce_events(&events);
    let router = RunningRouter::start(setup.router_config()).expect("the router starts");
    for (channel, want) in &expected_by_channel {
        let total: usize = want.values().sum();
        let got = setup.notifications(channel, total);
        assert!(
            got.len() >= total,
            "{channel}: {} of {total} notifications arrived",
            got.len()
        );
    }
    router.stop().expect("the router stops cleanly");

    // Everything is committed now; read it all again and compare as multisets.
    let codec = RecordCodec::notification();
    let subs_by_id: BTreeMap<&str, _> = subs
        .iter()
        .map(|s| (s.subscription_id.as_str(), s))
        .collect();
    for (channel, want) in &expected_by_channel {
        let records = setup.notifications(channel, 0);
        let mut got: BTreeMap<(String, String), usize> = BTreeMap::new();
        for record in &records {
            let n: Notification = codec
                .decode(record.value.as_deref().expect("a notification value"))
                .expect("notifications decode");
            assert_eq!(
                n.notification_id,
                notification_id(&n.event_id, &n.subscription_id)
            );
            assert_eq!(record.key.as_deref(), Some(n.record_key().as_bytes()));
            let sub = subs_by_id[n.subscription_id.as_str()];
            assert_eq!(
                (n.channel.as_str(), &n.destination),
                (channel.as_str(), &sub.destination.address)
            );
            assert_eq!(
                n.ordering_key.is_some(),
                sub.ordering == herald_core::subscription::Ordering::PerKey
            );
            let payload: serde_json::Value =
                serde_json::from_str(&n.payload).expect("JSON payload");
            assert_eq!(payload["id"], n.event_id.as_str());
            assert_eq!(payload["type"], n.event_type.as_str());
            *got.entry((n.event_id, n.subscription_id)).or_default() += 1;
        }
        let missing: Vec<_> = want
            .keys()
            .filter(|k| !got.contains_key(*k))
            .take(5)
            .collect();
        let extra: Vec<_> = got
            .iter()
            .filter(|(k, c)| want.get(*k) != Some(c))
            .take(5)
            .collect();
        assert!(
            &got == want,
            "{channel}: {} notifications for {} pairs, expected {} pairs; missing e.g. {missing:?}, \
             extra or duplicated e.g. {extra:?}",
            records.len(),
            got.len(),
            want.len()
        );
    }
    assert!(
        setup.dead_letters(0, Duration::from_secs(10)).is_empty(),
        "good events were dead-lettered"
    );
}
