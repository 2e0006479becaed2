//! Integration tests of the Kafka layer against the real broker started by `scripts/services`.
//!
//! One test binary (rather than one per file) so the crate links once; each module holds the
//! tests of one concern.

mod admin;
mod transactions;
