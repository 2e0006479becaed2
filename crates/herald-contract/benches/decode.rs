//! Decode throughput per core for `order.paid`, warm schema cache, side by side with the bare
//! Avro decoder in the same run (ratios survive a noisy machine; absolute figures do not).
//!
//! Run: `cargo bench -p herald-contract --bench decode` (optionally `-- <events per round>`).

/// The allocator the herald binary uses, so the figures are the product's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use apache_avro::reader::datum::GenericDatumReader;
use herald_contract::decode::{Decoder, RawRecord};
use herald_contract::{Catalog, encode, framing};

const ROUNDS: usize = 5;

fn order_paid() -> serde_json::Value {
    serde_json::json!({
        "order_id": "o-1001", "tenant_id": "m-7", "user_id": "u-42", "payment_id": "pay-9",
        "amount": "129.90", "currency": "CNY", "payment_method": "ALIPAY",
        "items": [
            {"sku": "sku-1", "quantity": 2, "unit_price": "59.95"},
            {"sku": "sku-2", "quantity": 1, "unit_price": "10.00"}
        ],
        "coupon_code": "SPRING", "paid_at": "2026-12-03T10:15:30.123Z", "risk_score": 0.125
    })
}

/// Runs `work` `events` times per round and returns the best round's events per second.
fn measure(events: usize, mut work: impl FnMut()) -> f64 {
    let mut best = Duration::MAX;
    for _ in 0..ROUNDS {
        let started = Instant::now();
        for _ in 0..events {
            work();
        }
        best = best.min(started.elapsed());
    }
    events as f64 / best.as_secs_f64()
}

fn main() {
    let events: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(200_000);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas");
    let catalog = Arc::new(Catalog::load_dir(&dir).expect("schemas/ loads"));
    let paid = catalog
        .by_event_type("order.paid")
        .expect("order.paid")
        .entry
        .clone();
    let datum = encode::encode_json(&paid, &order_paid()).expect("encodes");
    let payload = framing::single_object(paid.fingerprint(), &datum);
    let headers: Vec<(&str, &[u8])> = vec![
        ("ce_specversion", b"1.0"),
        ("ce_id", b"7d6f1c1e-6a55-4a7e-9a0b-0c1d2e3f4a5b"),
        ("ce_source", b"/payments"),
        ("ce_type", b"order.paid"),
        ("ce_time", b"2026-12-03T10:15:30.123Z"),
        ("ce_tenant", b"m-7"),
        (
            "traceparent",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
        ("content-type", b"application/avro"),
    ];
    let record = RawRecord {
        topic: "events.order",
        partition: 0,
        offset: 0,
        timestamp_ms: Some(0),
        payload: Some(&payload),
        headers,
    };
    let decoder = Decoder::new(None, catalog);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    // Warm the schema cache, as a running router's is.
    runtime.block_on(decoder.decode(&record)).expect("decodes");

    let bare = measure(events, || {
        let reader = GenericDatumReader::builder(paid.schema())
            .build()
            .expect("reader");
        let mut cursor = &datum[..];
        black_box(reader.read_value(&mut cursor).expect("reads"));
    });
    let prebuilt = GenericDatumReader::builder(paid.schema())
        .build()
        .expect("reader");
    let bare_prebuilt = measure(events, || {
        let mut cursor = &datum[..];
        black_box(prebuilt.read_value(&mut cursor).expect("reads"));
    });
    let decode_only = measure(events, || {
        black_box(
            runtime
                .block_on(decoder.decode(black_box(&record)))
                .expect("decodes"),
        );
    });
    let decode_json = measure(events, || {
        let event = runtime
            .block_on(decoder.decode(black_box(&record)))
            .expect("decodes");
        black_box(event.data_json());
    });
    let decode_json_bytes = measure(events, || {
        let event = runtime
            .block_on(decoder.decode(black_box(&record)))
            .expect("decodes");
        black_box(serde_json::to_vec(&event.data_json()).expect("serializes"));
    });

    println!(
        "decode benchmark: order.paid ({} B Avro datum, 8 headers), one core, best of {ROUNDS} rounds of {events}",
        datum.len()
    );
    println!("{:<58} {:>12} {:>8}", "stage", "events/s", "ratio");
    for (name, rate) in [
        ("apache-avro datum decode alone (baseline)", bare),
        ("apache-avro datum decode, reader built once", bare_prebuilt),
        (
            "herald decode: framing + cache + ce headers + datum",
            decode_only,
        ),
        ("herald decode + Avro->JSON value", decode_json),
        (
            "herald decode + Avro->JSON + serialize (webhook body)",
            decode_json_bytes,
        ),
    ] {
        println!("{name:<58} {rate:>12.0} {:>7.2}x", rate / bare);
    }
    let target = 200_000.0;
    println!(
        "target: decode + Avro->JSON >= {target:.0} events/s per core: {} ({decode_json:.0})",
        if decode_json >= target {
            "met"
        } else {
            "NOT met"
        }
    );
}
