//! `--metrics-addr`: serves a service's Prometheus registry at `GET /metrics`, for scrapers
//! and autoscalers (consumer lag, attempts, dead letters), and the probes orchestrators use:
//! `GET /healthz` (the process answers) and `GET /readyz` (the service is built: configuration
//! valid, broker reachable, its topics present). The server starts only once the service is
//! built, so both answer 200 whenever it answers at all; a stopping service closes it.

use std::net::SocketAddr;

use anyhow::Context;
use prometheus::{Encoder, TextEncoder};

/// Binds `address` and serves `registry` on the runtime until the process ends.
pub(crate) fn serve(
    runtime: &tokio::runtime::Runtime,
    address: SocketAddr,
    registry: prometheus::Registry,
) -> anyhow::Result<()> {
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(address))
        .with_context(|| format!("binding the metrics address {address}"))?;
    let app = axum::Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route("/readyz", axum::routing::get(|| async { "ready" }))
        .route(
            "/metrics",
            axum::routing::get(move || {
                let registry = registry.clone();
                async move {
                    let mut text = Vec::new();
                    // Encoding text into a Vec cannot fail for well-formed metric families.
                    let _ = TextEncoder::new().encode(&registry.gather(), &mut text);
                    (
                        [("content-type", "text/plain; version=0.0.4")],
                        String::from_utf8_lossy(&text).into_owned(),
                    )
                }
            }),
        );
    runtime.spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "the metrics server stopped");
        }
    });
    Ok(())
}
