//! Subscriptions written while the router runs: a new one routes an event produced one second
//! later, a deleted one no longer does.

use std::time::Duration;

use herald_router::testkit::{self, RunningRouter};

use crate::{Setup, webhook};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_takes_effect_within_a_second_and_a_deleted_one_stops() {
    // One partition: the router handles the events in the order they are produced.
    let setup = Setup::new("router-live", 1).await;
    let (changing, steady) = (webhook(0, &["order.*"]), webhook(1, &["order.*"]));
    setup.put_subscriptions(std::slice::from_ref(&steady));
    let router = RunningRouter::start(setup.router_config()).expect("the router starts");
    let event = |i: usize| testkit::event("live", 4 * i + 1); // order.paid events

    // Warm up: the router is routing once the steady subscription's notification arrives.
    setup.produce_events(&[event(0)]);
    assert_eq!(setup.notifications("webhook", 1).len(), 1);

    setup.put_subscriptions(std::slice::from_ref(&changing));
    tokio::time::sleep(Duration::from_secs(1)).await;
    setup.produce_events(&[event(1)]);
    let pairs = |min| {
        setup
            .notifications("webhook", min)
            .iter()
            .map(|r| {
                let p = testkit::payload_of(r.value.as_deref().unwrap_or_default());
                let n: herald_core::Notification = herald_contract::RecordCodec::notification()
                    .decode(r.value.as_deref().unwrap_or_default())
                    .expect("decodes");
                (
                    p["id"].as_str().unwrap_or_default().to_owned(),
                    n.subscription_id,
                )
            })
            .collect::<Vec<_>>()
    };
    let after_create = pairs(3);
    let e1 = event(1).id;
    assert!(
        after_create.contains(&(e1.clone(), changing.subscription_id.clone())),
        "an event produced 1 s after the subscription was created was not routed to it: {after_create:?}"
    );

    setup.delete_subscription(&changing.subscription_id);
    tokio::time::sleep(Duration::from_secs(1)).await;
    setup.produce_events(&[event(2)]);
    // The steady subscription's notification of event 2 commits in the same transaction as
    // the deleted one's would, so once it is visible the question is decided.
    let after_delete = pairs(4);
    router.stop().expect("the router stops cleanly");
    let e2 = event(2).id;
    assert!(
        after_delete.contains(&(e2.clone(), steady.subscription_id.clone())),
        "{after_delete:?}"
    );
    assert!(
        !after_delete.contains(&(e2, changing.subscription_id.clone())),
        "a deleted subscription was still routed to: {after_delete:?}"
    );
    assert_eq!(
        after_delete.len(),
        4,
        "e0→steady, e1→both, e2→steady: {after_delete:?}"
    );
}
