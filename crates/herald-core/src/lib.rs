//! Herald's domain model: the names, identities and rules that every service agrees on.
//!
//! # Layout
//! - [`app`]: apps and their encrypted signing secrets.
//! - [`attempt`]: delivery attempt records.
//! - [`topics`]: the names of Herald's Kafka topics, derived from one configurable prefix.
//! - [`subscription`]: subscriptions as stored, and their validation and compilation.
//! - [`filter`]: CEL filter expressions, compiled once, evaluated per event.
//! - [`transform`]: from an event to the payload a subscriber receives.
//! - [`matching`]: the subscription index that routes an event without a linear scan.
//! - [`notification`]: notification records and their deterministic ids.
//! - [`retry`]: the retry schedule, jitter, `Retry-After` bounds and retry tiers.
//! - [`time`]: timestamps as Herald's records carry them.
//!
//! # Architecture invariant
//! This crate does no I/O and does not depend on tokio, rdkafka or apache-avro, so that the
//! rules it holds can be unit-tested and property-tested in isolation and reused by every
//! service without dragging a runtime along.

pub mod app;
pub mod attempt;
pub mod filter;
pub mod matching;
pub mod notification;
pub mod retry;
pub mod subscription;
pub mod time;
pub mod topics;
pub mod transform;

pub use matching::{EventFacts, SubscriptionIndex};
pub use notification::{Notification, notification_id};
pub use subscription::{CompiledSubscription, Subscription, SubscriptionError};
