//! Records that cannot be decoded go to `herald.router.dlq` untouched, with their origin and
//! the reason in headers, and the good records around them are routed as usual.

use std::collections::BTreeSet;
use std::time::Duration;

use herald_contract::{Catalog, framing};
use herald_router::testkit::{self, RunningRouter};

use crate::{Setup, header, webhook};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_records_are_dead_lettered_with_reasons_while_good_ones_flow() {
    let setup = Setup::new("router-poison", 1).await;
    setup.put_subscriptions(&[webhook(0, &["*"])]);

    let good = testkit::event("p", 1);
    let paid = Catalog::builtin();
    let paid = paid.by_event_type("order.paid").expect("order.paid schema");
    let datum = &good.value[10..]; // a valid datum: the good event minus its C3 01 header
    let poison: [(&str, Vec<u8>); 4] = [
        ("bad_magic", b"\x07not a framing Herald reads".to_vec()),
        // An id no registry has handed out.
        (
            "unknown_schema_id",
            framing::confluent(2_000_000_000, datum),
        ),
        (
            "truncated",
            framing::single_object(paid.entry.fingerprint(), &datum[..datum.len() / 2]),
        ),
        (
            "unknown_fingerprint",
            framing::single_object(0x0123_4567_89ab_cdef, datum),
        ),
    ];
    // good, poison, good, poison, … so that good records follow every poison record.
    let mut events = Vec::new();
    let mut good_ids = BTreeSet::new();
    for (i, (_, value)) in poison.iter().enumerate() {
        let before = testkit::event("p", 2 * i);
        good_ids.insert(before.id.clone());
        events.push(before.clone());
        let mut bad = before;
        bad.id = format!("poison-{i}");
        bad.value = value.clone();
        bad.headers.retain(|(k, _)| k != "ce_id");
        bad.headers.push(("ce_id".to_owned(), bad.id.clone()));
        events.push(bad);
    }
    let last = testkit::event("p", 99);
    good_ids.insert(last.id.clone());
    events.push(last);
    setup.produce_events(&events);

    let router = RunningRouter::start(setup.router_config()).expect("the router starts");
    let notified: BTreeSet<String> =
        testkit::notified_event_ids(&setup.notifications("webhook", good_ids.len()))
            .into_iter()
            .collect();
    let dead = setup.dead_letters(poison.len(), Duration::from_secs(60));
    router.stop().expect("the router stops cleanly");

    assert_eq!(
        notified, good_ids,
        "every good record is routed, poison or not around it"
    );
    assert_eq!(
        dead.len(),
        poison.len(),
        "one dead letter per poison record: {dead:?}"
    );
    // The DLQ is partitioned by the original key: match dead letters by origin offset.
    for (i, (kind, value)) in poison.iter().enumerate() {
        let offset = (2 * i + 1).to_string();
        let record = dead
            .iter()
            .find(|r| header(r, "herald-origin-offset") == Some(offset.as_str()))
            .unwrap_or_else(|| panic!("no dead letter for offset {offset} ({kind}): {dead:?}"));
        assert_eq!(header(record, "herald-error-kind"), Some(*kind));
        assert_eq!(
            header(record, "herald-origin-topic"),
            Some(setup.events_topic.as_str())
        );
        assert_eq!(header(record, "herald-origin-partition"), Some("0"));
        let reason = header(record, "herald-error").unwrap_or_default();
        assert!(
            reason.contains(&format!("{}[0]@{offset}", setup.events_topic)),
            "the reason names the record: {reason}"
        );
        assert_eq!(
            header(record, "ce_id"),
            Some(format!("poison-{i}").as_str()),
            "original headers kept"
        );
        assert_eq!(
            record.value.as_deref(),
            Some(value.as_slice()),
            "original bytes kept"
        );
        assert_eq!(
            record.key.as_deref(),
            Some(events[2 * i + 1].key.as_bytes())
        );
    }
}
