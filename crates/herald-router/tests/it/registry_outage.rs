//! The schema registry unreachable: Confluent-framed events are neither lost nor
//! dead-lettered nor reordered; the router pauses, retries, and routes them all in order once
//! the registry answers again.

use std::time::Duration;

use herald_contract::{Catalog, RegistryClient, RegistryConfig, framing};
use herald_kafka::testkit::test_registry;
use herald_router::testkit::{self, RunningRouter};
use tokio::net::{TcpListener, TcpStream};

use crate::{Setup, webhook};

/// Forwards every connection on `listener` to `upstream` (host:port) until the task is
/// dropped: the registry "comes back" when this starts.
async fn forward(listener: TcpListener, upstream: String) {
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else {
            continue;
        };
        let upstream = upstream.clone();
        tokio::spawn(async move {
            if let Ok(mut outbound) = TcpStream::connect(&upstream).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_outage_pauses_routing_without_losing_or_reordering_events() {
    let setup = Setup::new("router-registry-outage", 1).await;
    setup.put_subscriptions(&[webhook(0, &["order.paid"])]);

    // The writer schema lives only in the registry: register it under a subject of our own.
    let catalog = Catalog::builtin();
    let paid = catalog
        .by_event_type("order.paid")
        .expect("order.paid schema");
    let real = test_registry();
    let client = RegistryClient::new(&RegistryConfig::new(real.clone())).expect("registry client");
    let schema_id = client
        .register(
            &format!("{}-outage-value", setup.kafka.prefix()),
            &paid.text,
        )
        .await
        .expect("registering order.paid");
    let events: Vec<_> = (0..10)
        .map(|i| {
            let mut e = testkit::event("outage", 4 * i + 1);
            // Published to everyone: no point-to-point recipient, no broadcast.
            e.headers
                .retain(|(k, _)| k != "ce_recipient" && k != "ce_broadcast");
            e.value = framing::confluent(schema_id, &e.value[10..]);
            e
        })
        .collect();

    // A port where nothing listens yet: the router's registry is down.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("its address")
        .port();
    let url = with_port(&real, port);
    let mut config = setup.router_config();
    config.registry_url = Some(url);
    let router = RunningRouter::start(config).expect("the router starts");
    setup.produce_events(&events);

    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        setup.notifications("webhook", 0).is_empty(),
        "routed without the writer schema"
    );
    assert!(
        setup.dead_letters(0, Duration::from_secs(5)).is_empty(),
        "a retryable failure was dead-lettered"
    );

    let upstream = real
        .trim_start_matches("http://")
        .split('/')
        .next()
        .expect("host:port")
        .to_owned();
    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("rebinding the port");
    let proxy = tokio::spawn(forward(listener, upstream));
    let routed = testkit::notified_event_ids(&setup.notifications("webhook", events.len()));
    router.stop().expect("the router stops cleanly");
    proxy.abort();
    let produced: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
    assert_eq!(routed, produced, "every event, once, in order");
    assert!(setup.dead_letters(0, Duration::from_secs(5)).is_empty());
}

/// `http://host:port/path` with the port replaced.
fn with_port(url: &str, port: u16) -> String {
    let rest = url.trim_start_matches("http://");
    let path = rest.find('/').map(|i| &rest[i..]).unwrap_or("");
    format!("http://127.0.0.1:{port}{path}")
}
