//! Retry policy as data: the schedule of delays between attempts, jitter, how a receiver's
//! `Retry-After` is honoured, and which retry tier topic a delayed notification waits in.
//!
//! A channel performs one attempt and says what happened ([`AttemptOutcome`]); the delivery
//! worker asks [`RetryPolicy::decide`] what to do next. Nothing about retries lives in a
//! channel, so every channel shares one set of semantics.
//!
//! Randomness is an argument (`jitter_unit`, a number in `[0, 1)`) rather than a generator
//! inside, so that the rules stay pure and tests can pin them.

use std::time::Duration;

/// What one attempt came to, as the channel classifies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The receiver accepted the notification.
    Delivered,
    /// A failure that may pass (5xx, 408, 429, timeout, connection error); the receiver may
    /// have asked for a minimum wait (`Retry-After`).
    Retryable {
        /// The wait the receiver asked for, if any.
        retry_after: Option<Duration>,
        /// What went wrong, for the attempt record.
        reason: String,
    },
    /// A failure that will not pass by waiting (a 4xx other than 408/429, an invalid address,
    /// a refused destination).
    Permanent {
        /// What went wrong.
        reason: String,
    },
    /// The receiver said the endpoint is gone for good (HTTP 410): dead-letter and disable
    /// the subscription.
    Gone {
        /// What the receiver said.
        reason: String,
    },
}

/// What the worker does after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextStep {
    /// Nothing: the notification is delivered.
    Done,
    /// Attempt again after `delay`, waiting in retry tier `tier`.
    Retry {
        /// How long from now.
        delay: Duration,
        /// The retry tier topic (`.retry.<tier>`) to wait in.
        tier: usize,
    },
    /// Write it to the channel's dead-letter topic.
    DeadLetter {
        /// Why, for the `herald-error-kind` header: `permanent`, `gone` or `exhausted`.
        kind: &'static str,
        /// Whether the subscription should be disabled (HTTP 410).
        disable_subscription: bool,
    },
}

/// The platforms third parties know retry on roughly this curve (Stripe, Svix, Shopify): at
/// once, then growing waits, for about a day in all.
pub const DEFAULT_SCHEDULE: [Duration; 10] = [
    Duration::ZERO,
    Duration::from_secs(5),
    Duration::from_secs(30),
    Duration::from_secs(2 * 60),
    Duration::from_secs(10 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(60 * 60),
    Duration::from_secs(3 * 60 * 60),
    Duration::from_secs(6 * 60 * 60),
    Duration::from_secs(12 * 60 * 60),
];

/// A retry schedule with its jitter and `Retry-After` bounds.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// The wait before retry `n` (the `n+1`-th attempt after the first); its length is the
    /// number of retries.
    pub schedule: Vec<Duration>,
    /// Each wait is spread by up to this fraction either way, so that the retries of many
    /// notifications that failed together do not arrive together.
    pub jitter: f64,
    /// A `Retry-After` shorter than the scheduled wait is ignored; a longer one is honoured up
    /// to this bound.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            schedule: DEFAULT_SCHEDULE.to_vec(),
            jitter: 0.2,
            max_retry_after: Duration::from_secs(6 * 60 * 60),
        }
    }
}

impl RetryPolicy {
    /// The same bounds with a subscription's own schedule (milliseconds), when it has one.
    pub fn with_override(&self, schedule_ms: Option<&[i64]>) -> Self {
        match schedule_ms {
            None => self.clone(),
            Some(ms) => Self {
                schedule: ms
                    .iter()
                    .map(|&m| Duration::from_millis(m.max(0) as u64))
                    .collect(),
                ..self.clone()
            },
        }
    }

    /// What to do after attempt number `attempt` (1 for the first) came to `outcome`.
    /// `jitter_unit` is a uniform random number in `[0, 1)`; `tiers` are the delays of the
    /// channel's retry tier topics, ascending.
    pub fn decide(
        &self,
        attempt: u32,
        outcome: &AttemptOutcome,
        jitter_unit: f64,
        tiers: &[Duration],
    ) -> NextStep {
        match outcome {
            AttemptOutcome::Delivered => NextStep::Done,
            AttemptOutcome::Permanent { .. } => NextStep::DeadLetter {
                kind: "permanent",
                disable_subscription: false,
            },
            AttemptOutcome::Gone { .. } => NextStep::DeadLetter {
                kind: "gone",
                disable_subscription: true,
            },
            AttemptOutcome::Retryable { retry_after, .. } => {
                let Some(scheduled) = self.schedule.get(attempt.saturating_sub(1) as usize) else {
                    return NextStep::DeadLetter {
                        kind: "exhausted",
                        disable_subscription: false,
                    };
                };
                let jittered = spread(*scheduled, self.jitter, jitter_unit);
                let delay = match retry_after {
                    Some(asked) => jittered.max((*asked).min(self.max_retry_after)),
                    None => jittered,
                };
                NextStep::Retry {
                    delay,
                    tier: tier_for(delay, tiers),
                }
            }
        }
    }
}

/// `delay` moved by up to `fraction` of itself either way, `unit` in `[0, 1)` choosing where.
fn spread(delay: Duration, fraction: f64, unit: f64) -> Duration {
    let factor = 1.0 + fraction.clamp(0.0, 1.0) * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
    delay.mul_f64(factor.max(0.0))
}

/// The tier a notification due in `delay` waits in: the one with the longest delay that is not
/// longer than `delay`, so that records in a tier are due roughly in the order they arrive
/// (a tier pauses its partition until its head is due, and a later-due head would hold back
/// earlier-due records behind it). Tier 0 when none is short enough.
pub fn tier_for(delay: Duration, tiers: &[Duration]) -> usize {
    tiers
        .iter()
        .rposition(|tier_delay| *tier_delay <= delay)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retryable(retry_after: Option<Duration>) -> AttemptOutcome {
        AttemptOutcome::Retryable {
            retry_after,
            reason: "HTTP 503".into(),
        }
    }

    #[test]
    fn the_default_schedule_lasts_about_a_day() {
        let total: Duration = DEFAULT_SCHEDULE.iter().sum();
        assert!(total > Duration::from_secs(20 * 3600) && total < Duration::from_secs(26 * 3600));
    }

    #[test]
    fn retries_follow_the_schedule_then_dead_letter() {
        let policy = RetryPolicy {
            jitter: 0.0,
            ..RetryPolicy::default()
        };
        let tiers = DEFAULT_SCHEDULE;
        for (n, scheduled) in DEFAULT_SCHEDULE.iter().enumerate() {
            let step = policy.decide(n as u32 + 1, &retryable(None), 0.5, &tiers);
            assert_eq!(
                step,
                NextStep::Retry {
                    delay: *scheduled,
                    tier: n
                }
            );
        }
        assert_eq!(
            policy.decide(11, &retryable(None), 0.5, &tiers),
            NextStep::DeadLetter {
                kind: "exhausted",
                disable_subscription: false
            }
        );
    }

    #[test]
    fn jitter_stays_within_its_fraction() {
        let policy = RetryPolicy::default();
        let tiers = DEFAULT_SCHEDULE;
        let delay = |unit| match policy.decide(3, &retryable(None), unit, &tiers) {
            NextStep::Retry { delay, .. } => delay,
            other => panic!("{other:?}"),
        };
        assert_eq!(delay(0.0), Duration::from_secs(24));
        assert_eq!(delay(0.5), Duration::from_secs(30));
        assert!(delay(0.999_999) <= Duration::from_secs(36));
    }

    #[test]
    fn retry_after_is_honoured_within_bounds() {
        let policy = RetryPolicy {
            jitter: 0.0,
            ..RetryPolicy::default()
        };
        let tiers = DEFAULT_SCHEDULE;
        let delay = |asked| match policy.decide(2, &retryable(Some(asked)), 0.5, &tiers) {
            NextStep::Retry { delay, .. } => delay,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            delay(Duration::from_secs(1)),
            Duration::from_secs(5),
            "shorter ignored"
        );
        assert_eq!(delay(Duration::from_secs(90)), Duration::from_secs(90));
        assert_eq!(
            delay(Duration::from_secs(86_400)),
            Duration::from_secs(6 * 3600),
            "capped"
        );
    }

    #[test]
    fn permanent_and_gone_dead_letter_at_once() {
        let policy = RetryPolicy::default();
        let permanent = AttemptOutcome::Permanent {
            reason: "HTTP 400".into(),
        };
        let gone = AttemptOutcome::Gone {
            reason: "HTTP 410".into(),
        };
        assert!(matches!(
            policy.decide(1, &permanent, 0.5, &DEFAULT_SCHEDULE),
            NextStep::DeadLetter {
                kind: "permanent",
                disable_subscription: false
            }
        ));
        assert!(matches!(
            policy.decide(1, &gone, 0.5, &DEFAULT_SCHEDULE),
            NextStep::DeadLetter {
                kind: "gone",
                disable_subscription: true
            }
        ));
        assert_eq!(
            policy.decide(1, &AttemptOutcome::Delivered, 0.5, &DEFAULT_SCHEDULE),
            NextStep::Done
        );
    }

    #[test]
    fn a_subscription_schedule_overrides_the_default_and_picks_the_nearest_shorter_tier() {
        let policy = RetryPolicy {
            jitter: 0.0,
            ..RetryPolicy::default()
        }
        .with_override(Some(&[100, 45_000]));
        let tiers = DEFAULT_SCHEDULE;
        assert_eq!(
            policy.decide(1, &retryable(None), 0.5, &tiers),
            NextStep::Retry {
                delay: Duration::from_millis(100),
                tier: 0
            }
        );
        assert_eq!(
            policy.decide(2, &retryable(None), 0.5, &tiers),
            NextStep::Retry {
                delay: Duration::from_secs(45),
                tier: 2
            }
        );
        assert!(matches!(
            policy.decide(3, &retryable(None), 0.5, &tiers),
            NextStep::DeadLetter {
                kind: "exhausted",
                ..
            }
        ));
    }
}
