//! Herald's analyst tooling: a time window of an event topic exported to a file
//! (`herald replay --out events.ndjson | .avro | .parquet`). Re-routing a window to
//! subscribers is the router's own code (`herald_router::replay`); both read the window the
//! same way (`herald_kafka::WindowReader`) and take the same event-type pattern and filter
//! (`herald_router::route::EventGate`).
//!
//! # Layout
//! - [`export`]: the export loop and its three formats.

pub mod export;

pub use export::{ExportError, ExportProgress, ExportRequest, Format};
