//! `herald dev`: Herald in one process, to see it work within a minute: an embedded broker
//! (librdkafka's mock cluster), the router, the webhook delivery service, the admin API and
//! console, and an echo receiver; a demo app subscribed to `order.*` and demo events produced
//! for it. `--brokers` (and `--registry`) use a real cluster instead.
//!
//! Its limits, printed at start: the embedded broker keeps everything in memory (a few MiB
//! per partition), compacts nothing and does not provide exactly-once; nothing survives the
//! process.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use base64::Engine;
use herald_admin::AdminConfig;
use herald_contract::{Catalog, RecordCodec};
use herald_core::Subscription;
use herald_core::app::App;
use herald_core::subscription::{Destination, Ordering as Delivery};
use herald_core::topics::{ChannelName, TopicNames};
use herald_deliver::secrets::{MasterKey, generate_whsec};
use herald_deliver::{DeliverConfig, Deliverer};
use herald_kafka::{KafkaConfig, RecordProducer, TopicSpec};
use herald_producer::{EventProducer, OutgoingEvent};
use herald_router::{Router, RouterConfig};
use serde_json::{Value, json};

#[derive(Debug, clap::Args)]
pub(crate) struct DevArgs {
    /// A real Kafka cluster to use instead of the embedded broker.
    #[arg(long)]
    brokers: Option<String>,
    /// A schema registry (Confluent-compatible API) to encode events with; without one,
    /// events are written in Avro single-object encoding with the built-in schemas.
    #[arg(long)]
    registry: Option<String>,
    /// Where the admin API and console listen.
    #[arg(long, default_value = "127.0.0.1:8070")]
    listen: SocketAddr,
    /// Where the echo receiver listens.
    #[arg(long, default_value = "127.0.0.1:8071")]
    receiver_listen: SocketAddr,
    /// How many demo events to produce (two a second).
    #[arg(long, default_value_t = 20)]
    events: usize,
    /// Prefix of Herald's topics.
    #[arg(long, default_value = "herald")]
    prefix: String,
}

/// What the echo receiver got, newest last (at most 1,000).
#[derive(Default)]
struct Echo {
    got: Mutex<Vec<Value>>,
}

async fn receive(
    State(echo): State<Arc<Echo>>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: String,
) -> axum::http::StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    let mut got = echo.got.lock().unwrap_or_else(|e| e.into_inner());
    if got.len() >= 1000 {
        got.remove(0);
    }
    println!(
        "echo receiver: {} {} (webhook-id {})",
        body["type"].as_str().unwrap_or("?"),
        body["data"]["order_id"].as_str().unwrap_or(""),
        header("webhook-id")
    );
    got.push(json!({
        "path": path,
        "webhook_id": header("webhook-id"),
        "webhook_signature": header("webhook-signature"),
        "traceparent": header("traceparent"),
        "body": body,
    }));
    axum::http::StatusCode::NO_CONTENT
}

fn random_bytes(n: usize) -> Vec<u8> {
    std::iter::repeat_with(|| uuid::Uuid::new_v4().into_bytes())
        .flatten()
        .take(n)
        .collect()
}

/// Every topic the services of `herald dev` use, once each.
fn all_topics(
    names: &TopicNames,
    router: &RouterConfig,
    deliver: &DeliverConfig,
) -> Vec<TopicSpec> {
    let webhook = ChannelName::parse("webhook").expect("a valid channel name");
    let mut all: BTreeMap<String, TopicSpec> = BTreeMap::new();
    let specs = herald_router::herald_topics(names, router)
        .into_iter()
        .chain(herald_deliver::topics(names, &webhook, deliver))
        .chain(herald_admin::topics(names))
        .chain(["events.order", "events.user"].map(|t| TopicSpec::new(t, 3)));
    for spec in specs {
        all.entry(spec.name.clone()).or_insert(spec);
    }
    all.into_values().collect()
}

pub(crate) fn run(args: DevArgs, runtime: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    let names = TopicNames::with_prefix(&args.prefix)?;
    let embedded = args.brokers.is_none();
    let mut router_config = RouterConfig::new("");
    router_config.topic_prefix = args.prefix.clone();
    router_config.registry_url = args.registry.clone();
    router_config.notify_partitions = 3;
    router_config.max_batch_wait_ms = 20;
    let mut deliver_config = DeliverConfig::new("", "webhook");
    deliver_config.topic_prefix = args.prefix.clone();
    deliver_config.partitions = 3;
    deliver_config.retry_schedule_ms = vec![1_000, 5_000, 30_000];
    deliver_config.retry_tiers_ms = deliver_config.retry_schedule_ms.clone();
    deliver_config.webhook.allow_networks = vec!["127.0.0.1/32".to_owned()];
    let brokers = match &args.brokers {
        Some(brokers) => brokers.clone(),
        None => herald_kafka::embedded::start(&all_topics(&names, &router_config, &deliver_config))
            .context("starting the embedded broker")?,
    };
    let kafka = KafkaConfig::new(&brokers);
    router_config.kafka = kafka.clone();
    deliver_config.kafka = kafka.clone();
    let base64 = base64::engine::general_purpose::STANDARD;
    let master_key =
        MasterKey::parse(&base64.encode(random_bytes(32))).map_err(anyhow::Error::msg)?;
    deliver_config.master_key = Some(master_key.clone());
    let operator_token = format!("op_{}", uuid::Uuid::new_v4().simple());
    let stop = Arc::new(AtomicBool::new(false));

    // The echo receiver.
    let echo = Arc::new(Echo::default());
    let receiver = runtime
        .block_on(tokio::net::TcpListener::bind(args.receiver_listen))
        .with_context(|| format!("binding the echo receiver to {}", args.receiver_listen))?;
    let receiver_address = receiver.local_addr()?;
    let echo_app = axum::Router::new()
        .route("/hooks/{*path}", axum::routing::post(receive))
        .route(
            "/hooks",
            axum::routing::get(|State(echo): State<Arc<Echo>>| async move {
                Json(Value::Array(
                    echo.got.lock().unwrap_or_else(|e| e.into_inner()).clone(),
                ))
            }),
        )
        .with_state(echo);
    runtime.spawn(async move {
        let _ = axum::serve(receiver, echo_app).await;
    });

    // The admin API and console.
    let mut admin = AdminConfig::new(&brokers, master_key.clone(), operator_token.clone());
    admin.topic_prefix = args.prefix.clone();
    admin.listen = args.listen;
    admin.registry = args.registry.clone();
    admin.webhook.allow_networks = vec!["127.0.0.1/32".to_owned()];
    let (bound, admin_address) = tokio::sync::oneshot::channel();
    let admin_task = runtime.spawn(herald_admin::serve(admin, stop.clone(), bound));
    let admin_address = runtime
        .block_on(admin_address)
        .context("the admin API did not start")?;

    // The demo app and its subscription.
    let now = herald_core::time::now_ms();
    let (api_key, key_hash) = herald_deliver::inbox::auth::generate_api_key(now);
    let app = App {
        app_id: "demo".to_owned(),
        owner_tenant: "default".to_owned(),
        tenant_scope: None,
        name: "Demo app".to_owned(),
        api_key_hashes: vec![key_hash],
        signing_secrets: vec![master_key.encrypt("s1", &generate_whsec(), now, None)],
        created_at: now,
        updated_at: now,
        version: 1,
    };
    let subscription = Subscription {
        subscription_id: "demo-orders".to_owned(),
        app_id: "demo".to_owned(),
        event_types: vec!["order.*".to_owned()],
        tenant_scope: None,
        filter: None,
        channel: "webhook".to_owned(),
        destination: Destination {
            address: format!("http://{receiver_address}/hooks/demo"),
            template_id: None,
            headers: BTreeMap::new(),
        },
        transform: None,
        retry_schedule_ms: None,
        ordering: Delivery::None,
        digest: None,
        enabled: true,
        created_at: now,
        updated_at: now,
        version: 1,
    };
    let records = RecordProducer::new(&kafka)?;
    runtime.block_on(async {
        let app_value = RecordCodec::builtin("dev.herald.App").encode(&app)?;
        records
            .send(&names.apps(), Some(b"demo"), Some(&app_value), &[])
            .await?;
        let sub_value = RecordCodec::subscription().encode(&subscription)?;
        records
            .send(
                &names.subscriptions(),
                Some(b"demo-orders"),
                Some(&sub_value),
                &[],
            )
            .await?;
        anyhow::Ok(())
    })?;

    // The router and the delivery service, each on a thread of its own.
    let router = runtime
        .block_on(Router::build(router_config))
        .context("starting the router")?;
    let deliverer = runtime
        .block_on(Deliverer::build(deliver_config))
        .context("starting the delivery service")?;
    let threads = [
        {
            let (stop, handle) = (stop.clone(), runtime.handle().clone());
            std::thread::spawn(move || {
                router
                    .run_until_stopped(stop, handle)
                    .map_err(|e| format!("the router stopped: {e}"))
            })
        },
        {
            let (stop, handle) = (stop.clone(), runtime.handle().clone());
            std::thread::spawn(move || {
                deliverer
                    .run_until_stopped(stop, handle)
                    .map_err(|e| format!("the delivery service stopped: {e}"))
            })
        },
    ];

    println!(
        "herald dev: router, webhook delivery service, admin API and echo receiver in one process"
    );
    if embedded {
        println!(
            "  broker:    embedded ({brokers}; librdkafka's mock cluster: in memory, nothing survives, no exactly-once)"
        );
    } else {
        println!("  broker:    {brokers}");
    }
    println!("  console:   http://{admin_address}/console");
    println!("  app key:   {api_key}");
    println!("  operator:  {operator_token}");
    println!("  api:       http://{admin_address}/openapi.json");
    println!("  receiver:  http://{receiver_address}/hooks");
    println!(
        "  producing {} demo events (order.created, order.paid) to events.order; Ctrl-C stops",
        args.events
    );

    // The demo events.
    let catalog = Catalog::builtin();
    let producer = match &args.registry {
        None => EventProducer::single_object(&kafka, catalog.clone(), "/herald/dev")?,
        Some(url) => EventProducer::new(
            &kafka,
            herald_contract::RegistryClient::new(&herald_contract::RegistryConfig::new(
                url.clone(),
            ))?,
            catalog.clone(),
            herald_contract::subjects::SubjectStrategy::RecordName,
            "/herald/dev",
        )?,
    };
    let produce_stop = stop.clone();
    runtime.spawn(async move {
        for i in 0..args.events {
            if produce_stop.load(Ordering::SeqCst) {
                break;
            }
            let event_type = if i % 2 == 0 {
                "order.created"
            } else {
                "order.paid"
            };
            let Some(schema) = catalog.by_event_type(event_type) else {
                continue;
            };
            let mut data = herald_contract::json_schema::example(&schema.entry);
            let order = format!("o-{}", 1001 + i / 2);
            data["order_id"] = json!(order);
            let event = OutgoingEvent::new(event_type, &data).key(order.clone());
            if let Err(error) = producer.produce(event).await {
                eprintln!("herald dev: producing a demo event failed: {error}");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });

    runtime.block_on(crate::shutdown_signal());
    eprintln!("herald dev: stopping");
    stop.store(true, Ordering::SeqCst);
    let mut failures = Vec::new();
    for thread in threads {
        match thread.join() {
            Ok(Ok(())) => {}
            Ok(Err(error)) => failures.push(error),
            Err(_) => failures.push("a service thread panicked".to_owned()),
        }
    }
    if let Ok(Err(error)) = runtime.block_on(admin_task) {
        failures.push(format!("the admin API stopped: {error}"));
    }
    match failures.is_empty() {
        true => Ok(()),
        false => anyhow::bail!(failures.join("; ")),
    }
}
