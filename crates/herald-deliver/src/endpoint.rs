//! Per-destination limits: a concurrency limit, an optional rate limit and a circuit breaker.
//! They keep one slow or failing endpoint from taking more than its share: attempts to it wait
//! for its own permits only, and once it has failed `breaker_failures` times in a row its
//! notifications go straight to the retry tiers (without a request) until a probe succeeds.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The limits every destination gets.
#[derive(Debug, Clone, Copy)]
pub struct EndpointLimits {
    /// Attempts in flight at once.
    pub concurrency: usize,
    /// Attempts per second; `None` for no limit.
    pub rate_per_sec: Option<NonZeroU32>,
    /// Consecutive failures that open the breaker.
    pub breaker_failures: u32,
    /// How long the breaker stays open before a probe.
    pub breaker_open: Duration,
}

#[derive(Debug, Default)]
struct Breaker {
    consecutive_failures: u32,
    open_until: Option<Instant>,
    probing: bool,
}

/// One destination's limits.
pub struct Endpoint {
    permits: Arc<Semaphore>,
    limiter: Option<DefaultDirectRateLimiter>,
    breaker: Mutex<Breaker>,
    limits: EndpointLimits,
}

/// Why an attempt was not made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CircuitOpen {
    /// Until the breaker lets a probe through.
    pub retry_in: Duration,
    /// Failures in a row that opened it.
    pub failures: u32,
}

/// Permission to make one attempt; report its result with [`Endpoint::record`].
pub struct Admission {
    _permit: OwnedSemaphorePermit,
}

impl Endpoint {
    fn new(limits: EndpointLimits) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(limits.concurrency)),
            limiter: limits
                .rate_per_sec
                .map(|rate| RateLimiter::direct(Quota::per_second(rate))),
            breaker: Mutex::new(Breaker::default()),
            limits,
        }
    }

    fn check_breaker(&self) -> Result<(), CircuitOpen> {
        let mut breaker = self.breaker.lock().unwrap_or_else(|e| e.into_inner());
        let Some(until) = breaker.open_until else {
            return Ok(());
        };
        let now = Instant::now();
        if now < until || breaker.probing {
            return Err(CircuitOpen {
                retry_in: until
                    .saturating_duration_since(now)
                    .max(Duration::from_millis(100)),
                failures: breaker.consecutive_failures,
            });
        }
        // Half open: this attempt is the probe; the others keep waiting for its result.
        breaker.probing = true;
        Ok(())
    }

    /// Waits for a permit and the rate limit, unless the breaker is (or opens while waiting)
    /// open; then the attempt is not made.
    pub async fn admit(&self) -> Result<Admission, CircuitOpen> {
        loop {
            self.check_breaker()?;
            // Wait in short steps so that a breaker opening meanwhile releases the waiters.
            let permit = tokio::time::timeout(
                Duration::from_millis(200),
                self.permits.clone().acquire_owned(),
            )
            .await;
            if let Ok(Ok(permit)) = permit {
                if let Some(limiter) = &self.limiter {
                    limiter.until_ready().await;
                }
                return Ok(Admission { _permit: permit });
            }
        }
    }

    /// Records an attempt's result: `true` if the endpoint answered acceptably (delivered or a
    /// permanent refusal: it is up), `false` if it failed in a way that may pass.
    pub fn record(&self, healthy: bool) {
        let mut breaker = self.breaker.lock().unwrap_or_else(|e| e.into_inner());
        breaker.probing = false;
        if healthy {
            *breaker = Breaker::default();
            return;
        }
        breaker.consecutive_failures += 1;
        if breaker.consecutive_failures >= self.limits.breaker_failures {
            breaker.open_until = Some(Instant::now() + self.limits.breaker_open);
        }
    }
}

/// Every destination's limits, created on first use.
pub struct Endpoints {
    limits: EndpointLimits,
    all: Mutex<HashMap<String, Arc<Endpoint>>>,
}

impl Endpoints {
    /// An empty set with these limits for each destination.
    pub fn new(limits: EndpointLimits) -> Self {
        Self {
            limits,
            all: Mutex::new(HashMap::new()),
        }
    }

    /// The destination's limits.
    pub fn get(&self, destination: &str) -> Arc<Endpoint> {
        self.all
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(destination.to_owned())
            .or_insert_with(|| Arc::new(Endpoint::new(self.limits)))
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> EndpointLimits {
        EndpointLimits {
            concurrency: 2,
            rate_per_sec: None,
            breaker_failures: 3,
            breaker_open: Duration::from_millis(300),
        }
    }

    #[tokio::test]
    async fn the_breaker_opens_after_consecutive_failures_and_a_probe_closes_it() {
        let endpoint = Endpoint::new(limits());
        for _ in 0..3 {
            let _admitted = endpoint.admit().await.unwrap();
            endpoint.record(false);
        }
        let refused = endpoint.admit().await.err().expect("open");
        assert_eq!(refused.failures, 3);
        tokio::time::sleep(Duration::from_millis(350)).await;
        let probe = endpoint.admit().await.expect("the probe");
        assert!(endpoint.admit().await.is_err(), "one probe at a time");
        drop(probe);
        endpoint.record(true);
        assert!(endpoint.admit().await.is_ok(), "closed again");
    }

    #[tokio::test]
    async fn waiters_are_released_when_the_breaker_opens() {
        let endpoint = Arc::new(Endpoint::new(limits()));
        let a = endpoint.admit().await.unwrap();
        let b = endpoint.admit().await.unwrap();
        let waiting = tokio::spawn({
            let endpoint = endpoint.clone();
            async move { endpoint.admit().await.map(|_| ()) }
        });
        for _ in 0..3 {
            endpoint.record(false);
        }
        let result = tokio::time::timeout(Duration::from_secs(2), waiting)
            .await
            .expect("released promptly")
            .unwrap();
        assert!(result.is_err());
        drop((a, b));
    }
}
