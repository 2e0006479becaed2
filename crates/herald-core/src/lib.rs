//! Herald's domain model: the names, identities and rules that every service agrees on.
//!
//! # Layout
//! - [`topics`]: the names of Herald's Kafka topics, derived from one configurable prefix.
//!
//! # Architecture invariant
//! This crate does no I/O and does not depend on tokio, rdkafka or apache-avro, so that the
//! rules it holds can be unit-tested and property-tested in isolation and reused by every
//! service without dragging a runtime along.

pub mod topics;
