//! Integration tests of the contract against the real schema registry started by
//! `scripts/services` (`HERALD_TEST_REGISTRY`).

mod evolution;
mod poison;
mod support;
