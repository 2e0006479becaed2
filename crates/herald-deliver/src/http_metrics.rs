//! Prometheus metrics of an HTTP service (the inbox, the admin API): requests by route,
//! method and status, and latency by route, recorded by one middleware, and `GET /metrics`
//! serving them. Routes are labelled by their pattern (`/v1/subscriptions/{subscription_id}`),
//! never the raw path, so the label's values stay few.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

/// The metrics of one HTTP service.
#[derive(Clone)]
pub struct HttpMetrics {
    registry: Registry,
    requests: IntCounterVec,
    seconds: HistogramVec,
}

impl HttpMetrics {
    /// Metrics named `<service>_http_requests_total` and `<service>_http_request_seconds`
    /// in a registry of their own.
    pub fn new(service: &str) -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                format!("{service}_http_requests_total"),
                "HTTP requests answered, by route pattern, method and status",
            ),
            &["route", "method", "status"],
        )?;
        let seconds = HistogramVec::new(
            HistogramOpts::new(
                format!("{service}_http_request_seconds"),
                "Time to answer an HTTP request, by route pattern",
            ),
            &["route"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(seconds.clone()))?;
        Ok(Self {
            registry,
            requests,
            seconds,
        })
    }

    /// The registry, for services that add metrics of their own.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The Prometheus text of every metric in the registry.
    pub fn render(&self) -> String {
        let mut text = Vec::new();
        // Encoding well-formed metric families into a Vec cannot fail.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut text);
        String::from_utf8_lossy(&text).into_owned()
    }
}

/// The middleware: times every request and counts its answer.
pub async fn record(
    State(metrics): State<Arc<HttpMetrics>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    metrics
        .seconds
        .with_label_values(&[&route])
        .observe(started.elapsed().as_secs_f64());
    metrics
        .requests
        .with_label_values(&[&route, &method, response.status().as_str()])
        .inc();
    response
}

/// `GET /metrics`.
pub async fn serve(State(metrics): State<Arc<HttpMetrics>>) -> Response {
    (
        [("content-type", "text/plain; version=0.0.4")],
        metrics.render(),
    )
        .into_response()
}

/// Adds `GET /metrics` and the recording middleware to `router`.
pub fn instrument(router: axum::Router, metrics: Arc<HttpMetrics>) -> axum::Router {
    router
        .route(
            "/metrics",
            axum::routing::get(serve).with_state(metrics.clone()),
        )
        .layer(axum::middleware::from_fn_with_state(metrics, record))
}
