//! Integration tests of the event producer against the real broker and registry: what it
//! writes, read back from Kafka and decoded by the contract crate.

mod round_trip;
