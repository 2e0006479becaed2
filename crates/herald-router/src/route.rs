//! The per-batch routing step: decode each event, find its subscriptions, apply each one's
//! filter → transform → route chain, and turn the result into Notification records (or, for a
//! record that cannot be processed, a dead letter with the reason in its headers).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use herald_contract::records::encode_notification;
use herald_contract::{Decoder, Event, RawRecord, RecordCodec};
use herald_core::filter::FilterInput;
use herald_core::subscription::{CompiledSubscription, KNOWN_CHANNELS, Ordering};
use herald_core::topics::{ChannelName, TopicNames};
use herald_core::{EventFacts, Notification, notification_id};
use herald_kafka::{BatchOutcome, BatchProcessor, CommitStats, OutRecord, ReadRecord};
use serde_json::{Map, Value as Json};

use crate::metrics::RouterMetrics;
use crate::subscriptions::SubscriptionStore;

/// The first pause after a retryable failure; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(500);
const MAX_PAUSE: Duration = Duration::from_secs(10);

/// Routes batches; the pipeline owns consuming and committing.
pub struct RouteProcessor {
    pub(crate) decoder: Arc<Decoder>,
    pub(crate) store: SubscriptionStore,
    pub(crate) names: TopicNames,
    pub(crate) codec: RecordCodec,
    pub(crate) metrics: Arc<RouterMetrics>,
    pub(crate) runtime: tokio::runtime::Handle,
    /// The pause the next retryable failure waits; reset by a batch that completes.
    pub(crate) next_pause: Duration,
    /// Threads that decode and route a batch, each a contiguous slice of it.
    pub(crate) threads: usize,
    /// Replays only: which decoded events to route at all.
    pub(crate) gate: Option<EventGate>,
    /// Replays only: mixed into notification ids so a replay's notifications get fresh ones.
    pub(crate) id_salt: Option<String>,
    /// `herald.notify.<channel>` of the known channels, named once rather than per
    /// notification.
    notify_topics: HashMap<String, String>,
}

/// Which events a replay routes: an event-type pattern and a filter (the subscriptions' CEL),
/// both optional.
#[derive(Clone, Default)]
pub struct EventGate {
    /// Only events whose type matches.
    pub types: Option<herald_core::subscription::EventTypePattern>,
    /// Only events the expression passes.
    pub filter: Option<herald_core::filter::Filter>,
}

impl EventGate {
    /// Whether `event` passes.
    pub fn admits(&self, event: &Event, record: &ReadRecord) -> bool {
        if let Some(types) = &self.types
            && !types.matches(&event.event_type)
        {
            return false;
        }
        match &self.filter {
            Some(filter) => {
                let envelope = envelope(event, record);
                filter.matches(&FilterInput::new(&envelope)) == Ok(true)
            }
            None => true,
        }
    }
}

/// Below this many records per thread a batch is routed on the calling thread: spawning
/// costs more than it saves.
const MIN_RECORDS_PER_THREAD: usize = 64;

/// Why one (event, subscription) pair or one record was dead-lettered.
struct DeadLetter {
    kind: &'static str,
    detail: String,
    subscription_id: Option<String>,
}

/// What one thread made of its slice of a batch.
struct Routed {
    outputs: Vec<OutRecord>,
    /// Records of the slice, from its start, that were decoded and routed.
    processed: usize,
    /// Set when decoding stopped at a retryable failure (the registry unreachable).
    retry: bool,
}

impl RouteProcessor {
    /// A processor that routes every event (no gate, ids unsalted) on `threads` threads.
    pub(crate) fn new(
        decoder: Arc<Decoder>,
        store: SubscriptionStore,
        names: TopicNames,
        metrics: Arc<RouterMetrics>,
        runtime: tokio::runtime::Handle,
        threads: usize,
    ) -> Self {
        let notify_topics = KNOWN_CHANNELS
            .iter()
            .filter_map(|channel| ChannelName::parse(channel).ok())
            .map(|channel| (channel.as_str().to_owned(), names.notify(&channel)))
            .collect();
        Self {
            decoder,
            store,
            names,
            codec: RecordCodec::notification(),
            metrics,
            runtime,
            next_pause: FIRST_PAUSE,
            threads,
            gate: None,
            id_salt: None,
            notify_topics,
        }
    }

    /// The topic of `channel`'s notifications.
    fn notify_topic(&self, channel: &ChannelName) -> String {
        match self.notify_topics.get(channel.as_str()) {
            Some(topic) => topic.clone(),
            None => self.names.notify(channel),
        }
    }

    /// Decodes and routes a batch on up to [`RouteProcessor::threads`] threads, each taking a
    /// contiguous slice; outputs keep the input order. A retryable decode failure stops the
    /// batch there: the slices before it count, the rest is read again after a pause.
    fn route_batch(&mut self, batch: &[ReadRecord]) -> BatchOutcome {
        let threads = self.threads.max(1);
        let routed: Vec<Routed> = if threads == 1 || batch.len() < MIN_RECORDS_PER_THREAD * 2 {
            vec![self.route_slice(batch)]
        } else {
            let per_thread = batch.len().div_ceil(threads).max(MIN_RECORDS_PER_THREAD);
            let this = &*self;
            std::thread::scope(|scope| {
                let handles: Vec<_> = batch
                    .chunks(per_thread)
                    .map(|slice| scope.spawn(move || this.route_slice(slice)))
                    .collect();
                // Joined in spawn order, so the outputs keep the input order (per-key
                // ordering downstream depends on it).
                handles
                    .into_iter()
                    .map(|h| h.join().expect("a routing thread panicked"))
                    .collect()
            })
        };
        let mut outcome = BatchOutcome::default();
        let mut retry = false;
        for slice in routed {
            outcome.outputs.extend(slice.outputs);
            outcome.processed += slice.processed;
            if slice.retry {
                retry = true;
                break;
            }
        }
        if retry {
            self.metrics.retry_pauses.inc();
            outcome.pause = Some(self.next_pause);
            self.next_pause = (self.next_pause * 2).min(MAX_PAUSE);
        } else {
            self.next_pause = FIRST_PAUSE;
        }
        outcome
    }

    /// Decodes and routes `slice` in order, stopping at a retryable decode failure. Decoding
    /// is async only for a schema the registry must be asked for; once cached it does not
    /// wait, so each thread polls it once and blocks on it only when it is still pending.
    fn route_slice(&self, slice: &[ReadRecord]) -> Routed {
        let mut routed = Routed {
            outputs: Vec::with_capacity(slice.len()),
            processed: 0,
            retry: false,
        };
        // In the runtime's context, so that a decode that must ask the registry can start its
        // request during the first poll below.
        let _runtime = self.runtime.enter();
        for record in slice {
            let raw = raw_record(record);
            let mut decoding = std::pin::pin!(self.decoder.decode(&raw));
            // A cached schema decodes in the first poll: polling once directly saves entering
            // the runtime and parking per event (block_on), a tenth of the routing time.
            let decoded = match decoding
                .as_mut()
                .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
            {
                std::task::Poll::Ready(decoded) => decoded,
                std::task::Poll::Pending => self.runtime.block_on(decoding),
            };
            match decoded {
                Ok(event) => {
                    self.metrics.event_in(&record.topic, &event.event_type);
                    if let Some(gate) = &self.gate
                        && !gate.admits(&event, record)
                    {
                        routed.processed += 1;
                        continue;
                    }
                    for result in self.route_event(&event, record) {
                        let out = result.unwrap_or_else(|dead| self.dead_letter(record, dead));
                        routed.outputs.push(out);
                    }
                }
                Err(error) if error.kind.is_retryable() => {
                    tracing::warn!(%error, pause_ms = self.next_pause.as_millis() as u64, "decode failed, will retry");
                    routed.retry = true;
                    return routed;
                }
                Err(error) => {
                    self.metrics.event_in(&record.topic, "undecodable");
                    tracing::warn!(%error, "dead-lettering an undecodable record");
                    let dead = DeadLetter {
                        kind: error.kind.label(),
                        detail: error.to_string(),
                        subscription_id: None,
                    };
                    routed.outputs.push(self.dead_letter(record, dead));
                }
            }
            routed.processed += 1;
        }
        routed
    }

    /// The notifications of one event, or the dead letters of the pairs that failed.
    fn route_event(
        &self,
        event: &Event,
        record: &ReadRecord,
    ) -> Vec<Result<OutRecord, DeadLetter>> {
        let facts = EventFacts {
            event_type: &event.event_type,
            tenant: event.tenant.as_deref(),
            recipient: event.recipient.as_deref(),
            broadcast: event.attributes.extension("broadcast"),
        };
        // Routed under the index's read lock, so the candidates are borrowed (see
        // `candidates_borrowed`); a subscription change waits the few microseconds this takes.
        self.store.read(|index| {
            let candidates = index.candidates_borrowed(&facts);
            if candidates.is_empty() {
                self.metrics.matches_per_event.observe(0.0);
                return Vec::new();
            }
            let envelope = envelope(event, record);
            // Filters share one conversion of the event, made only if some candidate filters.
            let mut filter_input: Option<FilterInput> = None;
            let mut results = Vec::new();
            for sub in candidates {
                if let (Some(filter), None) = (&sub.filter, &facts.broadcast) {
                    let input = filter_input.get_or_insert_with(|| FilterInput::new(&envelope));
                    match filter.matches(input) {
                        Ok(true) => {}
                        Ok(false) => continue,
                        Err(error) => {
                            self.metrics.filter_errors.inc();
                            tracing::debug!(%error, subscription = %sub.spec.subscription_id, "filter error; no match");
                            continue;
                        }
                    }
                }
                results.push(self.notification(event, record, &envelope, sub));
            }
            self.metrics.matches_per_event.observe(results.len() as f64);
            results
        })
    }

    fn notification(
        &self,
        event: &Event,
        record: &ReadRecord,
        envelope: &Json,
        sub: &CompiledSubscription,
    ) -> Result<OutRecord, DeadLetter> {
        let spec = &sub.spec;
        let dead = |kind, detail: String| DeadLetter {
            kind,
            detail,
            subscription_id: Some(spec.subscription_id.clone()),
        };
        let payload = sub
            .transform
            .render(envelope)
            .map_err(|e| dead("transform", e.to_string()))?;
        let ordering_key = match spec.ordering {
            Ordering::None => None,
            Ordering::PerKey => event.subject.clone().or_else(|| {
                record
                    .key
                    .as_deref()
                    .map(|k| String::from_utf8_lossy(k).into_owned())
            }),
        };
        let notification = Notification {
            notification_id: match &self.id_salt {
                None => notification_id(&event.id, &spec.subscription_id),
                Some(salt) => {
                    notification_id(&format!("{}#{salt}", event.id), &spec.subscription_id)
                }
            },
            event_id: event.id.clone(),
            event_type: event.event_type.clone(),
            event_source: event.source.clone(),
            event_time: event.time_ms.or(record.timestamp_ms).unwrap_or(0),
            subscription_id: spec.subscription_id.clone(),
            app_id: spec.app_id.clone(),
            channel: spec.channel.clone(),
            destination: spec.destination.address.clone(),
            ordering_key,
            payload: payload.body,
            content_type: payload.content_type.to_owned(),
            attempt: 0,
            created_at: herald_core::time::now_ms(),
            traceparent: event.traceparent.clone(),
        };
        let value = encode_notification(&self.codec, &notification)
            .map_err(|e| dead("encode", e.to_string()))?;
        let mut headers = vec![
            (
                "herald-notification-id".to_owned(),
                notification.notification_id.clone().into_bytes(),
            ),
            (
                "ce_type".to_owned(),
                notification.event_type.clone().into_bytes(),
            ),
            (
                "ce_id".to_owned(),
                notification.event_id.clone().into_bytes(),
            ),
        ];
        if let Some(tp) = &notification.traceparent {
            headers.push(("traceparent".to_owned(), tp.clone().into_bytes()));
        }
        self.metrics
            .notifications_out
            .with_label_values(&[sub.channel.as_str()])
            .inc();
        Ok(OutRecord {
            topic: self.notify_topic(&sub.channel),
            key: Some(notification.record_key().into_bytes()),
            value: Some(value),
            headers,
        })
    }

    /// The original record, untouched, with Herald's origin and error headers added.
    fn dead_letter(&self, record: &ReadRecord, dead: DeadLetter) -> OutRecord {
        self.metrics
            .dead_letters
            .with_label_values(&[dead.kind])
            .inc();
        let mut headers: Vec<(String, Vec<u8>)> = record
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().unwrap_or_default()))
            .collect();
        headers.extend([
            (
                "herald-origin-topic".to_owned(),
                record.topic.clone().into_bytes(),
            ),
            (
                "herald-origin-partition".to_owned(),
                record.partition.to_string().into_bytes(),
            ),
            (
                "herald-origin-offset".to_owned(),
                record.offset.to_string().into_bytes(),
            ),
            (
                "herald-error-kind".to_owned(),
                dead.kind.as_bytes().to_vec(),
            ),
            ("herald-error".to_owned(), dead.detail.into_bytes()),
        ]);
        if let Some(id) = dead.subscription_id {
            headers.push(("herald-subscription-id".to_owned(), id.into_bytes()));
        }
        OutRecord {
            topic: self.names.router_dlq(),
            key: record.key.clone(),
            value: record.value.clone(),
            headers,
        }
    }
}

/// The contract crate's view of a consumed record.
pub fn raw_record(record: &ReadRecord) -> RawRecord<'_> {
    RawRecord {
        topic: &record.topic,
        partition: record.partition,
        offset: record.offset,
        timestamp_ms: record.timestamp_ms,
        payload: record.value.as_deref(),
        headers: record
            .headers
            .iter()
            .filter_map(|(k, v)| v.as_deref().map(|v| (k.as_str(), v)))
            .collect(),
    }
}

/// The JSON a subscriber receives by default, and what filters and templates see as `event`:
/// the CloudEvents context attributes plus the data.
pub fn envelope(event: &Event, record: &ReadRecord) -> Json {
    let mut map = Map::new();
    map.insert("id".into(), Json::String(event.id.clone()));
    map.insert("type".into(), Json::String(event.event_type.clone()));
    map.insert("source".into(), Json::String(event.source.clone()));
    if let Some(ms) = event.time_ms.or(record.timestamp_ms)
        && let Some(time) = chrono::DateTime::from_timestamp_millis(ms)
    {
        map.insert(
            "time".into(),
            Json::String(time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        );
    }
    for (name, value) in [
        ("subject", &event.subject),
        ("tenant", &event.tenant),
        ("recipient", &event.recipient),
    ] {
        if let Some(value) = value {
            map.insert(name.into(), Json::String(value.clone()));
        }
    }
    map.insert("data".into(), event.data_json());
    Json::Object(map)
}

impl BatchProcessor for RouteProcessor {
    fn process(&mut self, batch: &[ReadRecord]) -> BatchOutcome {
        self.route_batch(batch)
    }

    fn committed(&mut self, stats: &CommitStats) {
        self.metrics
            .transaction_seconds
            .with_label_values(&["committed"])
            .observe(stats.elapsed.as_secs_f64());
        self.metrics.events_committed.inc_by(stats.records as u64);
    }

    fn aborted(&mut self, _reason: &str) {
        self.metrics.transactions_aborted.inc();
    }

    fn lag(&mut self, lags: &[(String, i32, i64)]) {
        for (topic, partition, lag) in lags {
            self.metrics
                .consumer_lag
                .with_label_values(&[topic.as_str(), &partition.to_string()])
                .set(*lag);
        }
    }
}
