//! The delivery service's Prometheus metrics, defined in one place. Label values are bounded:
//! the channel is one per process, outcomes and dead-letter reasons are fixed sets, tiers are
//! as many as configured, partitions as many as the topics have.

use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// The delivery service's metrics.
pub struct DeliverMetrics {
    /// Attempts by channel and outcome (`succeeded`, `retry`, `dead_lettered`, `skipped`).
    pub attempts: IntCounterVec,
    /// Attempt latency by channel.
    pub attempt_seconds: HistogramVec,
    /// Notifications sent to a retry tier, by channel and tier.
    pub retries: IntCounterVec,
    /// Notifications dead-lettered, by channel and reason kind.
    pub dead_letters: IntCounterVec,
    /// Attempts in flight (lanes busy).
    pub in_flight: IntGauge,
    /// Notifications whose outcome committed.
    pub committed: IntCounter,
    /// Aborted transactions.
    pub transactions_aborted: IntCounter,
    /// Consumer lag by topic and partition.
    pub consumer_lag: IntGaugeVec,
}

impl DeliverMetrics {
    /// Creates the metrics and registers them with `registry`.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let metrics = Self {
            attempts: IntCounterVec::new(
                Opts::new(
                    "herald_deliver_attempts_total",
                    "Delivery attempts, by channel and outcome.",
                ),
                &["channel", "outcome"],
            )?,
            attempt_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "herald_deliver_attempt_seconds",
                    "Duration of delivery attempts.",
                )
                .buckets(vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    30.0,
                ]),
                &["channel"],
            )?,
            retries: IntCounterVec::new(
                Opts::new(
                    "herald_deliver_retries_total",
                    "Notifications sent to a retry tier, by channel and tier.",
                ),
                &["channel", "tier"],
            )?,
            dead_letters: IntCounterVec::new(
                Opts::new(
                    "herald_deliver_dead_letters_total",
                    "Notifications dead-lettered, by channel and reason.",
                ),
                &["channel", "reason"],
            )?,
            in_flight: IntGauge::new(
                "herald_deliver_in_flight",
                "Attempts in flight (busy lanes).",
            )?,
            committed: IntCounter::new(
                "herald_deliver_committed_total",
                "Notifications whose outcome was committed.",
            )?,
            transactions_aborted: IntCounter::new(
                "herald_deliver_transactions_aborted_total",
                "Aborted transactions (their records are read again).",
            )?,
            consumer_lag: IntGaugeVec::new(
                Opts::new(
                    "herald_deliver_consumer_lag",
                    "Consumer lag, by topic and partition.",
                ),
                &["topic", "partition"],
            )?,
        };
        registry.register(Box::new(metrics.attempts.clone()))?;
        registry.register(Box::new(metrics.attempt_seconds.clone()))?;
        registry.register(Box::new(metrics.retries.clone()))?;
        registry.register(Box::new(metrics.dead_letters.clone()))?;
        registry.register(Box::new(metrics.in_flight.clone()))?;
        registry.register(Box::new(metrics.committed.clone()))?;
        registry.register(Box::new(metrics.transactions_aborted.clone()))?;
        registry.register(Box::new(metrics.consumer_lag.clone()))?;
        Ok(metrics)
    }
}
