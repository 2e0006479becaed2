//! A time window of an event topic routed again: `herald replay --subscription <id>` (one
//! subscription) and `--to-router` (every subscription), and the admin API's replays.
//!
//! The window is read with `read_committed` and bounded (`herald_kafka::WindowReader`); each
//! batch goes through the router's own decode → match → filter → transform → route step, with
//! an optional event-type pattern and filter in front. Notifications keep the ids the first
//! routing gave them (receivers deduplicate on them) unless fresh ids are asked for.
//! Replays write with an idempotent producer, not in transactions: a replay stopped part way
//! and run again writes the same notification ids again, which is what receivers expect of a
//! replay anyway.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use herald_kafka::reader::Isolation;
use herald_kafka::{BatchProcessor, RecordProducer, WindowReader};

use crate::route::{EventGate, RouteProcessor};
use crate::{Router, RouterError, subscriptions};

/// What to replay, and for whom.
#[derive(Clone)]
pub struct ReplayRequest {
    /// The event topic.
    pub topic: String,
    /// The window's start, epoch milliseconds (included).
    pub from_ms: i64,
    /// The window's end, epoch milliseconds (excluded).
    pub to_ms: i64,
    /// Which events of the window to route.
    pub gate: EventGate,
    /// Only this subscription; every subscription when `None`.
    pub subscription: Option<String>,
    /// Give the replay's notifications new ids (receivers will not deduplicate them).
    pub fresh_ids: bool,
}

/// How far a replay got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayProgress {
    /// Offsets of the window read so far.
    pub read: u64,
    /// Offsets in the window.
    pub total: u64,
    /// Events (records) routed.
    pub events: u64,
    /// Notifications written.
    pub notifications: u64,
    /// Records and (event, subscription) pairs written to the router's DLQ.
    pub dead_letters: u64,
    /// Whether the whole window was read (not stopped part way).
    pub complete: bool,
}

impl Router {
    /// Routes the window of `request` again; calls `progress` after every batch. Stops early,
    /// with everything read so far written, when `stop` is set. `runtime` drives the schema
    /// registry client and the producer.
    pub fn replay(
        self,
        request: &ReplayRequest,
        stop: &AtomicBool,
        runtime: tokio::runtime::Handle,
        mut progress: impl FnMut(&ReplayProgress),
    ) -> Result<ReplayProgress, RouterError> {
        // The subscriptions as they are now, loaded once: a replay does not follow changes.
        let loaded = Arc::new(AtomicBool::new(true));
        let (all, follower) = subscriptions::load_and_follow(
            &self.config.kafka,
            &self.names.subscriptions(),
            self.metrics.clone(),
            loaded,
        )?;
        let _ = follower.join();
        let store = match &request.subscription {
            None => all,
            Some(id) => all.only(id).ok_or_else(|| {
                RouterError::Config(format!(
                    "no subscription {id:?} in {} (deleted, or never created)",
                    self.names.subscriptions()
                ))
            })?,
        };
        let dlq = self.names.router_dlq();
        let mut processor = RouteProcessor::new(
            self.decoder,
            store,
            self.names,
            self.metrics,
            runtime.clone(),
            self.config.route_threads,
        );
        processor.gate = Some(request.gate.clone());
        processor.id_salt = request
            .fresh_ids
            .then(|| format!("replay-{}", herald_core::time::now_ms()));
        let mut reader = WindowReader::open(
            &self.config.kafka,
            &request.topic,
            request.from_ms,
            request.to_ms,
            Isolation::ReadCommitted,
        )?;
        let producer = RecordProducer::new(&self.config.kafka)?;
        let mut done = ReplayProgress {
            total: reader.total(),
            ..ReplayProgress::default()
        };
        progress(&done);
        while !reader.is_done() && !stop.load(Ordering::SeqCst) {
            let batch = reader.next_batch(2000, Duration::from_millis(200))?;
            let mut rest = &batch[..];
            while !rest.is_empty() {
                let outcome = processor.process(rest);
                runtime.block_on(producer.send_all(&outcome.outputs))?;
                let dead = outcome.outputs.iter().filter(|o| o.topic == dlq).count() as u64;
                done.dead_letters += dead;
                done.notifications += outcome.outputs.len() as u64 - dead;
                done.events += outcome.processed as u64;
                rest = &rest[outcome.processed..];
                if let Some(pause) = outcome.pause {
                    // The registry is unreachable: wait and try the rest again.
                    if stop.load(Ordering::SeqCst) {
                        return Ok(done);
                    }
                    std::thread::sleep(pause);
                }
            }
            done.read = reader.consumed();
            progress(&done);
        }
        done.complete = reader.is_done();
        done.read = reader.consumed();
        Ok(done)
    }
}
