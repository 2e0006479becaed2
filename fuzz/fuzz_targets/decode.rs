//! Fuzzes the record decoder: framing detection, CloudEvents structured JSON, and Avro datums
//! of every schema in `schemas/`.
//!
//! Each input is decoded twice: as it is (so framing and JSON parsing see arbitrary bytes), and
//! with its first byte choosing a catalogue schema and the rest framed as a single-object
//! datum of that schema (so the Avro decoder and resolution see arbitrary datums without the
//! fuzzer having to guess an 8-byte fingerprint). Any error is fine; a panic, a hang or an
//! unbounded allocation is a bug.
#![no_main]

use std::path::Path;
use std::sync::{Arc, LazyLock};

use herald_contract::decode::{Decoder, RawRecord};
use herald_contract::{Catalog, framing};
use libfuzzer_sys::fuzz_target;

struct Harness {
    runtime: tokio::runtime::Runtime,
    decoder: Decoder,
    fingerprints: Vec<u64>,
}

static HARNESS: LazyLock<Harness> = LazyLock::new(|| {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas");
    let catalog = Arc::new(Catalog::load_dir(&dir).expect("schemas/ loads"));
    let fingerprints = catalog.schemas().iter().map(|s| s.entry.fingerprint()).collect();
    Harness {
        runtime: tokio::runtime::Builder::new_current_thread().build().expect("runtime"),
        decoder: Decoder::new(None, catalog),
        fingerprints,
    }
});

fn decode(payload: &[u8]) {
    let record = RawRecord {
        topic: "fuzz",
        payload: Some(payload),
        headers: vec![("content-type", b"application/cloudevents+json".as_slice())],
        ..RawRecord::default()
    };
    let _ = HARNESS.runtime.block_on(HARNESS.decoder.decode(&record));
}

fuzz_target!(|data: &[u8]| {
    decode(data);
    if let Some((choice, datum)) = data.split_first() {
        let fingerprint = HARNESS.fingerprints[*choice as usize % HARNESS.fingerprints.len()];
        decode(&framing::single_object(fingerprint, datum));
    }
});
