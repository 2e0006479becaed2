//! The router's Prometheus metrics, defined in one place. Label values are bounded: topics and
//! channels are few by construction, event types are capped by [`BoundedLabel`], DLQ reasons
//! are the decode errors' fixed labels.

use std::collections::HashSet;
use std::sync::Mutex;

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

/// Event types beyond this many distinct values are counted as `other`, so a producer that
/// invents types cannot blow up the metric's cardinality.
const MAX_EVENT_TYPE_LABELS: usize = 200;

/// The router's metrics.
pub struct RouterMetrics {
    /// Events read, by topic and event type.
    pub events_in: IntCounterVec,
    /// Notifications written, by channel.
    pub notifications_out: IntCounterVec,
    /// Subscriptions matched per event (after filters).
    pub matches_per_event: Histogram,
    /// Records sent to the router DLQ, by reason.
    pub dead_letters: IntCounterVec,
    /// Filter evaluations that failed (counted as no match).
    pub filter_errors: IntCounter,
    /// Retryable decode failures (registry unreachable) that paused routing.
    pub retry_pauses: IntCounter,
    /// Transaction duration, begin to commit.
    pub transaction_seconds: HistogramVec,
    /// Aborted transactions.
    pub transactions_aborted: IntCounter,
    /// Input events whose transaction committed: the router's real throughput.
    pub events_committed: IntCounter,
    /// Consumer lag by topic and partition.
    pub consumer_lag: IntGaugeVec,
    /// Subscriptions loaded.
    pub subscriptions: IntGauge,
    /// Subscription records that could not be decoded or compiled.
    pub subscription_errors: IntCounter,
    event_types: BoundedLabel,
}

/// A label whose distinct values are capped.
struct BoundedLabel {
    seen: Mutex<HashSet<String>>,
}

impl BoundedLabel {
    fn get<'a>(&self, value: &'a str) -> &'a str {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.contains(value) {
            return value;
        }
        if seen.len() < MAX_EVENT_TYPE_LABELS {
            seen.insert(value.to_owned());
            return value;
        }
        "other"
    }
}

impl RouterMetrics {
    /// Creates the metrics and registers them with `registry`.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let metrics = Self {
            events_in: IntCounterVec::new(
                Opts::new(
                    "herald_router_events_total",
                    "Events read, by topic and type.",
                ),
                &["topic", "type"],
            )?,
            notifications_out: IntCounterVec::new(
                Opts::new(
                    "herald_router_notifications_total",
                    "Notifications written, by channel.",
                ),
                &["channel"],
            )?,
            matches_per_event: Histogram::with_opts(
                HistogramOpts::new(
                    "herald_router_matches_per_event",
                    "Subscriptions an event matched, after filters.",
                )
                .buckets(vec![0.0, 1.0, 2.0, 5.0, 10.0, 50.0, 100.0, 1000.0]),
            )?,
            dead_letters: IntCounterVec::new(
                Opts::new(
                    "herald_router_dead_letters_total",
                    "Records sent to the router DLQ, by reason.",
                ),
                &["reason"],
            )?,
            filter_errors: IntCounter::new(
                "herald_router_filter_errors_total",
                "Filter evaluations that failed and counted as no match.",
            )?,
            retry_pauses: IntCounter::new(
                "herald_router_retry_pauses_total",
                "Times routing paused on a retryable failure (schema registry unreachable).",
            )?,
            transaction_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "herald_router_transaction_seconds",
                    "Kafka transaction duration, begin to commit.",
                )
                .buckets(prometheus::exponential_buckets(0.005, 2.0, 12)?),
                &["outcome"],
            )?,
            transactions_aborted: IntCounter::new(
                "herald_router_transactions_aborted_total",
                "Aborted transactions (their batches are read again).",
            )?,
            events_committed: IntCounter::new(
                "herald_router_events_committed_total",
                "Input events whose outcome (notifications, dead letters, offsets) committed.",
            )?,
            consumer_lag: IntGaugeVec::new(
                Opts::new("herald_router_consumer_lag", "Consumer lag in records."),
                &["topic", "partition"],
            )?,
            subscriptions: IntGauge::new(
                "herald_router_subscriptions",
                "Subscriptions loaded, enabled or not.",
            )?,
            subscription_errors: IntCounter::new(
                "herald_router_subscription_errors_total",
                "Subscription records that could not be decoded or compiled.",
            )?,
            event_types: BoundedLabel {
                seen: Mutex::new(HashSet::new()),
            },
        };
        registry.register(Box::new(metrics.events_in.clone()))?;
        registry.register(Box::new(metrics.notifications_out.clone()))?;
        registry.register(Box::new(metrics.matches_per_event.clone()))?;
        registry.register(Box::new(metrics.dead_letters.clone()))?;
        registry.register(Box::new(metrics.filter_errors.clone()))?;
        registry.register(Box::new(metrics.retry_pauses.clone()))?;
        registry.register(Box::new(metrics.transaction_seconds.clone()))?;
        registry.register(Box::new(metrics.transactions_aborted.clone()))?;
        registry.register(Box::new(metrics.events_committed.clone()))?;
        registry.register(Box::new(metrics.consumer_lag.clone()))?;
        registry.register(Box::new(metrics.subscriptions.clone()))?;
        registry.register(Box::new(metrics.subscription_errors.clone()))?;
        Ok(metrics)
    }

    /// Counts an event read.
    pub fn event_in(&self, topic: &str, event_type: &str) {
        self.events_in
            .with_label_values(&[topic, self.event_types.get(event_type)])
            .inc();
    }
}
