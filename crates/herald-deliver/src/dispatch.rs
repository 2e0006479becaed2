//! From a notification record to its outcome records: the worker's [`Dispatcher`].
//!
//! Each record is decoded on the Kafka thread (cheap, and it decides the lane), then attempted
//! on the async runtime: unordered notifications at once (each destination's own limits decide
//! how many run together), per-key ordered ones through a lane that runs them one at a time in
//! offset order; digest subscriptions collect a window of notifications and send them as one
//! request. The attempt's outcome becomes output records — the attempt record always,
//! plus a retry-tier record or a dead letter, plus a disabled subscription after HTTP 410 —
//! that the worker commits with the input offset.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use herald_contract::RecordCodec;
use herald_core::attempt::{AttemptStatus, DeliveryAttempt};
use herald_core::retry::{AttemptOutcome, NextStep, RetryPolicy};
use herald_core::topics::{ChannelName, TopicNames};
use herald_core::{Notification, Subscription};
use herald_kafka::worker::{Completion, Dispatcher};
use herald_kafka::{CommitStats, OutRecord, ReadRecord};
use tracing::Instrument;

use crate::channels::{AttemptContext, AttemptReport, Channel};
use crate::endpoint::Endpoints;
use crate::metrics::DeliverMetrics;
use crate::state::{DeliveryState, SubscriptionView};

/// The header holding when a retry is due, epoch milliseconds.
pub const DUE_AT: &str = "herald-due-at";
/// The header holding how many attempts were made.
pub const ATTEMPT: &str = "herald-attempt";
/// A notification for a subscription the service does not know yet is retried (the
/// subscription may be newer than what the service has read) until it is this old.
const UNKNOWN_SUBSCRIPTION_GRACE_MS: i64 = 60_000;

/// What every delivery task shares.
pub struct Shared {
    /// The channel that makes attempts.
    pub channel: Arc<dyn Channel>,
    /// The channel's name in topic names.
    pub channel_name: ChannelName,
    /// Subscriptions and secrets.
    pub state: Arc<DeliveryState>,
    /// Per-destination limits.
    pub endpoints: Endpoints,
    /// Attempts in flight over all destinations.
    pub in_flight: Arc<tokio::sync::Semaphore>,
    /// The default retry policy.
    pub policy: RetryPolicy,
    /// The retry tiers' delays.
    pub tiers: Vec<Duration>,
    /// Topic names.
    pub names: TopicNames,
    /// Notification codec.
    pub notifications: RecordCodec,
    /// DeliveryAttempt codec.
    pub attempts: RecordCodec,
    /// Subscription codec (to write a disabled subscription).
    pub subscriptions: RecordCodec,
    /// Metrics.
    pub metrics: Arc<DeliverMetrics>,
    /// A subscription failing without a success for this long is disabled when one of its
    /// notifications is dead-lettered.
    pub disable_after: Duration,
    /// Since when each subscription has failed without a success, epoch milliseconds.
    /// In memory: a restart forgets it and the clock starts again.
    pub failing_since: Mutex<HashMap<String, i64>>,
}

/// One notification and the handle that finishes its record.
struct Job {
    record: ReadRecord,
    notification: Notification,
    done: Completion,
}

/// The delivery service's dispatcher.
pub struct DeliverDispatcher {
    shared: Arc<Shared>,
    runtime: tokio::runtime::Handle,
    /// Ordered lanes with work queued: lane key → jobs waiting behind the running one.
    lanes: Arc<Mutex<HashMap<String, VecDeque<Job>>>>,
    /// Digest subscriptions' open windows: subscription id → the jobs collected so far.
    digests: Arc<Mutex<HashMap<String, DigestBuffer>>>,
}

/// A digest window being filled.
struct DigestBuffer {
    /// Identifies this window, so a timer does not flush a later one.
    window: u64,
    jobs: Vec<Job>,
}

impl DeliverDispatcher {
    /// A dispatcher running attempts on `runtime`.
    pub fn new(shared: Arc<Shared>, runtime: tokio::runtime::Handle) -> Self {
        Self {
            shared,
            runtime,
            lanes: Arc::default(),
            digests: Arc::default(),
        }
    }

    /// Adds a job to its subscription's digest window; sends the window when it is full, or
    /// when `max_wait` has passed since it opened.
    fn collect_digest(&self, job: Job, max_events: usize, max_wait: Duration) {
        static WINDOWS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let key = job.notification.subscription_id.clone();
        let mut digests = self.digests.lock().unwrap_or_else(|e| e.into_inner());
        let buffer = digests.entry(key.clone()).or_insert_with(|| {
            let window = WINDOWS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let digests = self.digests.clone();
            let shared = self.shared.clone();
            let key = key.clone();
            self.runtime.spawn(async move {
                tokio::time::sleep(max_wait).await;
                let due = {
                    let mut all = digests.lock().unwrap_or_else(|e| e.into_inner());
                    match all.get(&key) {
                        Some(buffer) if buffer.window == window => all.remove(&key),
                        _ => None,
                    }
                };
                if let Some(buffer) = due {
                    process_digest(&shared, buffer.jobs).await;
                }
            });
            DigestBuffer {
                window,
                jobs: Vec::new(),
            }
        });
        buffer.jobs.push(job);
        if buffer.jobs.len() >= max_events
            && let Some(full) = digests.remove(&key)
        {
            let shared = self.shared.clone();
            self.runtime
                .spawn(async move { process_digest(&shared, full.jobs).await });
        }
    }

    fn enqueue_in_lane(&self, lane: String, job: Job) {
        {
            let mut lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(queue) = lanes.get_mut(&lane) {
                queue.push_back(job);
                return;
            }
            lanes.insert(lane.clone(), VecDeque::new());
        }
        let lanes = self.lanes.clone();
        let shared = self.shared.clone();
        self.runtime.spawn(async move {
            let mut next = Some(job);
            while let Some(job) = next.take() {
                process(&shared, job).await;
                let mut all = lanes.lock().unwrap_or_else(|e| e.into_inner());
                next = all.get_mut(&lane).and_then(VecDeque::pop_front);
                if next.is_none() {
                    all.remove(&lane);
                }
            }
        });
    }
}

impl Dispatcher for DeliverDispatcher {
    fn dispatch(&mut self, record: ReadRecord, done: Completion) {
        let decoded = record
            .value
            .as_deref()
            .ok_or_else(|| "the record has no value".to_owned())
            .and_then(|bytes| {
                self.shared
                    .notifications
                    .decode::<Notification>(bytes)
                    .map_err(|e| e.to_string())
            });
        let notification = match decoded {
            Ok(n) => n,
            Err(error) => {
                tracing::error!(%error, topic = %record.topic, partition = record.partition, offset = record.offset, "undecodable notification dead-lettered");
                self.shared
                    .metrics
                    .dead_letters
                    .with_label_values(&[self.shared.channel_name.as_str(), "undecodable"])
                    .inc();
                let dlq = undecodable_dead_letter(&self.shared, &record, &error);
                done.finish(vec![dlq]);
                return;
            }
        };
        let job = Job {
            record,
            notification,
            done,
        };
        let digest = self
            .shared
            .state
            .subscription(&job.notification.subscription_id)
            .and_then(|view| view.spec.digest);
        if let Some(window) = digest {
            self.collect_digest(
                job,
                window.max_events.max(1) as usize,
                Duration::from_millis(window.max_wait_ms.max(1) as u64),
            );
        } else if job.notification.ordering_key.is_some() {
            let lane = format!(
                "{}\u{0}{}",
                job.record.partition,
                String::from_utf8_lossy(job.record.key.as_deref().unwrap_or_default())
            );
            self.enqueue_in_lane(lane, job);
        } else {
            let shared = self.shared.clone();
            self.runtime
                .spawn(async move { process(&shared, job).await });
        }
    }

    fn committed(&mut self, stats: &CommitStats) {
        self.shared.metrics.committed.inc_by(stats.records as u64);
    }

    fn aborted(&mut self, _reason: &str) {
        self.shared.metrics.transactions_aborted.inc();
    }

    fn lag(&mut self, lags: &[(String, i32, i64)]) {
        for (topic, partition, lag) in lags {
            self.shared
                .metrics
                .consumer_lag
                .with_label_values(&[topic.as_str(), &partition.to_string()])
                .set(*lag);
        }
    }
}

/// What happens to a notification before any request: some are settled without one.
#[derive(Clone)]
enum Verdict {
    /// Attempted (or refused by the breaker): the policy decides.
    Attempted(AttemptReport),
    /// Not attempted: dead-lettered with this kind and reason.
    Skipped { kind: &'static str, reason: String },
}

async fn process(shared: &Shared, job: Job) {
    let started_at = herald_core::time::now_ms();
    let started = Instant::now();
    let view = shared.state.subscription(&job.notification.subscription_id);
    let attempt = job.notification.attempt + 1;
    let verdict = attempt_once(
        shared,
        &job.notification,
        view.as_ref(),
        attempt,
        started_at,
    )
    .await;
    settle(shared, job, view.as_ref(), verdict, started_at, started);
}

/// A digest: one request carrying every job's payload as a JSON array; each notification
/// then gets its own outcome (attempt record, retry or dead letter) from the shared result,
/// and only then are their offsets released.
async fn process_digest(shared: &Shared, jobs: Vec<Job>) {
    let Some(first) = jobs.first() else {
        return;
    };
    let started_at = herald_core::time::now_ms();
    let started = Instant::now();
    let view = shared
        .state
        .subscription(&first.notification.subscription_id);
    let mut digest = first.notification.clone();
    let ids: Vec<&str> = jobs
        .iter()
        .map(|j| j.notification.notification_id.as_str())
        .collect();
    // The same set of notifications always makes the same digest id, so a digest re-sent
    // after a crash can be deduplicated like any notification.
    digest.notification_id = herald_core::notification_id(&ids.join(","), &digest.subscription_id);
    let items: Vec<serde_json::Value> = jobs
        .iter()
        .map(|j| {
            serde_json::from_str(&j.notification.payload)
                .unwrap_or_else(|_| serde_json::Value::String(j.notification.payload.clone()))
        })
        .collect();
    digest.payload = serde_json::Value::Array(items).to_string();
    digest.content_type = "application/json".to_owned();
    let attempt = jobs
        .iter()
        .map(|j| j.notification.attempt + 1)
        .max()
        .unwrap_or(1);
    let verdict = attempt_once(shared, &digest, view.as_ref(), attempt, started_at).await;
    for job in jobs {
        settle(
            shared,
            job,
            view.as_ref(),
            verdict.clone(),
            started_at,
            started,
        );
    }
}

/// Turns an attempt's verdict into the job's outcome records and finishes its record.
fn settle(
    shared: &Shared,
    job: Job,
    view: Option<&SubscriptionView>,
    verdict: Verdict,
    started_at: i64,
    started: Instant,
) {
    let Job {
        record,
        notification: n,
        done,
    } = job;
    let attempt = n.attempt + 1;
    let channel = shared.channel_name.as_str();
    let (report, step) = match verdict {
        Verdict::Attempted(report) => {
            let policy = shared
                .policy
                .with_override(view.and_then(|v| v.spec.retry_schedule_ms.as_deref()));
            let step = policy.decide(
                attempt as u32,
                &report.outcome,
                jitter_unit(&n.notification_id, attempt),
                &shared.tiers,
            );
            (report, step)
        }
        Verdict::Skipped { kind, reason } => (
            AttemptReport::without_response(
                AttemptOutcome::Permanent { reason },
                started.elapsed(),
            ),
            NextStep::DeadLetter {
                kind,
                disable_subscription: false,
            },
        ),
    };
    shared
        .metrics
        .attempt_seconds
        .with_label_values(&[channel])
        .observe(report.latency.as_secs_f64());
    let error = match &report.outcome {
        AttemptOutcome::Delivered => None,
        AttemptOutcome::Retryable { reason, .. }
        | AttemptOutcome::Permanent { reason }
        | AttemptOutcome::Gone { reason } => Some(reason.clone()),
    };
    let mut outputs = Vec::with_capacity(2);
    let (status, next_attempt_at) = match &step {
        NextStep::Done => {
            shared
                .metrics
                .attempts
                .with_label_values(&[channel, "succeeded"])
                .inc();
            failing(shared, &n.subscription_id, None);
            (AttemptStatus::Succeeded, None)
        }
        NextStep::Retry { delay, tier } => {
            shared
                .metrics
                .attempts
                .with_label_values(&[channel, "retry"])
                .inc();
            shared
                .metrics
                .retries
                .with_label_values(&[channel, &(tier + 1).to_string()])
                .inc();
            failing(shared, &n.subscription_id, Some(started_at));
            let due = herald_core::time::now_ms() + delay.as_millis() as i64;
            outputs.push(retry_record(
                shared,
                &record,
                &n,
                attempt,
                *tier,
                due,
                error.as_deref(),
            ));
            (AttemptStatus::RetryScheduled, Some(due))
        }
        NextStep::DeadLetter {
            kind,
            disable_subscription,
        } => {
            let skipped = matches!(*kind, "subscription_disabled" | "subscription_deleted");
            let outcome = if skipped { "skipped" } else { "dead_lettered" };
            shared
                .metrics
                .attempts
                .with_label_values(&[channel, outcome])
                .inc();
            shared
                .metrics
                .dead_letters
                .with_label_values(&[channel, kind])
                .inc();
            let failing_since = failing(shared, &n.subscription_id, Some(started_at));
            let failing_too_long = failing_since
                .is_some_and(|since| started_at - since >= shared.disable_after.as_millis() as i64);
            outputs.push(dead_letter(
                shared,
                &record,
                &n,
                attempt,
                kind,
                error.as_deref(),
            ));
            if (*disable_subscription || failing_too_long)
                && let Some(view) = view
                && view.spec.enabled
            {
                let why = if *disable_subscription {
                    "HTTP 410 Gone"
                } else {
                    "failing for too long"
                };
                tracing::warn!(subscription = %n.subscription_id, why, "disabling the subscription");
                outputs.push(disabled_subscription(shared, &view.spec));
            }
            let status = if skipped {
                AttemptStatus::Disabled
            } else {
                AttemptStatus::DeadLettered
            };
            (status, None)
        }
    };
    let attempt_record = DeliveryAttempt {
        attempt_id: DeliveryAttempt::id_for(&n.notification_id, attempt),
        notification_id: n.notification_id.clone(),
        subscription_id: n.subscription_id.clone(),
        app_id: n.app_id.clone(),
        channel: n.channel.clone(),
        attempt,
        status,
        started_at,
        latency_ms: report.latency.as_millis() as i64,
        response_code: report.response_code,
        response_body: report.response_body.clone(),
        error,
        next_attempt_at,
    };
    match shared.attempts.encode(&attempt_record) {
        Ok(value) => outputs.insert(
            0,
            OutRecord {
                topic: shared.names.attempts(),
                key: Some(n.notification_id.clone().into_bytes()),
                value: Some(value),
                headers: Vec::new(),
            },
        ),
        Err(e) => {
            tracing::error!(error = %e, "an attempt record does not encode; it is not written")
        }
    }
    done.finish(outputs);
}

/// Makes the attempt unless the subscription or the destination's breaker says not to.
async fn attempt_once(
    shared: &Shared,
    n: &Notification,
    view: Option<&SubscriptionView>,
    attempt: i32,
    now_ms: i64,
) -> Verdict {
    let view = match view {
        Some(view) if !view.spec.enabled => {
            return Verdict::Skipped {
                kind: "subscription_disabled",
                reason: format!("subscription {} is disabled", n.subscription_id),
            };
        }
        Some(view) => view,
        None if now_ms - n.created_at < UNKNOWN_SUBSCRIPTION_GRACE_MS => {
            return Verdict::Attempted(AttemptReport::without_response(
                AttemptOutcome::Retryable {
                    retry_after: Some(Duration::from_secs(1)),
                    reason: format!("subscription {} is not known yet", n.subscription_id),
                },
                Duration::ZERO,
            ));
        }
        None => {
            return Verdict::Skipped {
                kind: "subscription_deleted",
                reason: format!("subscription {} does not exist", n.subscription_id),
            };
        }
    };
    let endpoint = shared.endpoints.get(&n.destination);
    let admission = match endpoint.admit().await {
        Ok(admission) => admission,
        Err(open) => {
            return Verdict::Attempted(AttemptReport::without_response(
                AttemptOutcome::Retryable {
                    retry_after: Some(open.retry_in),
                    reason: format!(
                        "not attempted: the destination's circuit breaker is open after {} failures in a row",
                        open.failures
                    ),
                },
                Duration::ZERO,
            ));
        }
    };
    // After the destination's own permit, so a slow destination holds only its share.
    let Ok(_slot) = shared.in_flight.clone().acquire_owned().await else {
        unreachable!("the in-flight semaphore is never closed");
    };
    shared.metrics.in_flight.inc();
    let span = attempt_span(n, attempt);
    let report = shared
        .channel
        .attempt(
            n,
            AttemptContext {
                subscription: Some(view),
                attempt,
            },
        )
        .instrument(span.clone())
        .await;
    span.record("outcome", outcome_name(&report.outcome));
    if let Some(code) = report.response_code {
        span.record("http.response.status_code", code);
    }
    shared.metrics.in_flight.dec();
    drop(admission);
    endpoint.record(!matches!(report.outcome, AttemptOutcome::Retryable { .. }));
    Verdict::Attempted(report)
}

/// The span of one attempt: a child of the trace the event's producer started (its
/// `traceparent`, carried on the notification), so an OTLP backend shows the delivery inside
/// the producer's trace. Without an OpenTelemetry layer installed it is an ordinary span.
fn attempt_span(n: &Notification, attempt: i32) -> tracing::Span {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let span = tracing::info_span!(
        "deliver",
        otel.kind = "client",
        notification_id = %n.notification_id,
        subscription_id = %n.subscription_id,
        channel = %n.channel,
        attempt,
        outcome = tracing::field::Empty,
        "http.response.status_code" = tracing::field::Empty,
    );
    if let Some(parent) = n.traceparent.as_deref().and_then(remote_parent) {
        // Fails only when no OpenTelemetry layer is installed: nothing to link then.
        let _ = span.set_parent(parent);
    }
    span
}

/// A W3C `traceparent` (`00-<trace id>-<span id>-<flags>`) as a remote parent context.
fn remote_parent(traceparent: &str) -> Option<opentelemetry::Context> {
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
    };
    let mut parts = traceparent.split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version != "00" || trace.len() != 32 || span.len() != 16 || flags.len() != 2 {
        return None;
    }
    let context = SpanContext::new(
        TraceId::from_hex(trace).ok()?,
        SpanId::from_hex(span).ok()?,
        TraceFlags::new(u8::from_str_radix(flags, 16).ok()?),
        true,
        TraceState::default(),
    );
    context
        .is_valid()
        .then(|| opentelemetry::Context::new().with_remote_span_context(context))
}

fn outcome_name(outcome: &AttemptOutcome) -> &'static str {
    match outcome {
        AttemptOutcome::Delivered => "delivered",
        AttemptOutcome::Retryable { .. } => "retryable",
        AttemptOutcome::Permanent { .. } => "permanent",
        AttemptOutcome::Gone { .. } => "gone",
    }
}

/// Updates and returns since when `subscription` has been failing: `Some(now)` records a
/// failure (keeping an earlier start), `None` a success.
fn failing(shared: &Shared, subscription: &str, failed_at: Option<i64>) -> Option<i64> {
    let mut all = shared
        .failing_since
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    match failed_at {
        None => {
            all.remove(subscription);
            None
        }
        Some(at) => Some(*all.entry(subscription.to_owned()).or_insert(at)),
    }
}

/// A number in `[0, 1)` fixed by (notification, attempt): a replay of the same attempt waits
/// the same time, and notifications that failed together still spread out.
fn jitter_unit(notification_id: &str, attempt: i32) -> f64 {
    let mut hasher = DefaultHasher::new();
    (notification_id, attempt).hash(&mut hasher);
    (hasher.finish() % 1_000_000) as f64 / 1_000_000.0
}

fn header(name: &str, value: impl ToString) -> (String, Vec<u8>) {
    (name.to_owned(), value.to_string().into_bytes())
}

fn encoded(shared: &Shared, n: &Notification, attempt: i32) -> Vec<u8> {
    let mut next = n.clone();
    next.attempt = attempt;
    herald_contract::records::encode_notification(&shared.notifications, &next)
        .expect("a notification that decoded encodes again")
}

fn retry_record(
    shared: &Shared,
    record: &ReadRecord,
    n: &Notification,
    attempt: i32,
    tier: usize,
    due_ms: i64,
    error: Option<&str>,
) -> OutRecord {
    let mut headers = vec![header(ATTEMPT, attempt), header(DUE_AT, due_ms)];
    if let Some(error) = error {
        headers.push(header("herald-error", error));
    }
    OutRecord {
        topic: shared
            .names
            .notify_retry(&shared.channel_name, (tier + 1) as u16),
        key: record.key.clone(),
        value: Some(encoded(shared, n, attempt)),
        headers,
    }
}

fn origin_headers(record: &ReadRecord) -> Vec<(String, Vec<u8>)> {
    vec![
        header("herald-origin-topic", &record.topic),
        header("herald-origin-partition", record.partition),
        header("herald-origin-offset", record.offset),
        header("herald-failed-at", herald_core::time::now_ms()),
    ]
}

fn dead_letter(
    shared: &Shared,
    record: &ReadRecord,
    n: &Notification,
    attempt: i32,
    kind: &str,
    error: Option<&str>,
) -> OutRecord {
    let mut headers = vec![
        header("herald-error-kind", kind),
        header("herald-error", error.unwrap_or(kind)),
        header(ATTEMPT, attempt),
    ];
    headers.extend(origin_headers(record));
    OutRecord {
        topic: shared.names.notify_dlq(&shared.channel_name),
        key: record.key.clone(),
        value: Some(encoded(shared, n, attempt)),
        headers,
    }
}

fn undecodable_dead_letter(shared: &Shared, record: &ReadRecord, error: &str) -> OutRecord {
    let mut headers: Vec<(String, Vec<u8>)> = record
        .headers
        .iter()
        .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
        .collect();
    headers.push(header("herald-error-kind", "undecodable"));
    headers.push(header("herald-error", error));
    headers.extend(origin_headers(record));
    OutRecord {
        topic: shared.names.notify_dlq(&shared.channel_name),
        key: record.key.clone(),
        value: record.value.clone(),
        headers,
    }
}

fn disabled_subscription(shared: &Shared, current: &Subscription) -> OutRecord {
    let mut disabled = current.clone();
    disabled.enabled = false;
    disabled.version += 1;
    disabled.updated_at = herald_core::time::now_ms();
    let value = shared
        .subscriptions
        .encode(&disabled)
        .expect("a subscription that decoded encodes again");
    shared.state.put_subscription(disabled);
    OutRecord {
        topic: shared.names.subscriptions(),
        key: Some(current.subscription_id.clone().into_bytes()),
        value: Some(value),
        headers: Vec::new(),
    }
}
