//! Ends the process when a transactional call hangs.
//!
//! librdkafka's `send_offsets_to_transaction` can block far past its timeout when the group
//! coordinator goes away mid-transaction (confluentinc/librdkafka#5456, open; #5511 makes it
//! likelier): the chaos benchmark's broker restart left a router blocked in it for minutes,
//! deaf to SIGTERM because its loop never got back to the stop flag. The blocked call holds
//! the producer, so nothing in the process can recover it. Exiting is safe: the transaction
//! was never committed, and the restarted process's `init_transactions` fences the old
//! producer and aborts it, so exactly-once holds; the supervisor (Kubernetes, compose, the
//! chaos rig) restarts the process.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The exit status of a process the watchdog ended (`EX_TEMPFAIL`: try again).
pub const STUCK_EXIT_CODE: i32 = 75;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Marks when a guarded call started; a thread of its own checks every `tick` whether one has
/// been running longer than its limit, and then calls `on_stuck` once.
pub(crate) struct Watchdog {
    busy_since_ms: Arc<AtomicU64>,
}

impl Watchdog {
    /// Starts the checking thread; it ends when the watchdog is dropped.
    pub(crate) fn spawn(
        name: &str,
        limit: Duration,
        tick: Duration,
        on_stuck: impl FnOnce(Duration) + Send + 'static,
    ) -> Self {
        let busy_since_ms = Arc::new(AtomicU64::new(0));
        let watched: Weak<AtomicU64> = Arc::downgrade(&busy_since_ms);
        std::thread::Builder::new()
            .name(format!("watchdog {name}").chars().take(15).collect())
            .spawn(move || {
                while let Some(busy) = watched.upgrade() {
                    let since = busy.load(Ordering::SeqCst);
                    drop(busy);
                    if since != 0 {
                        let running = Duration::from_millis(now_ms().saturating_sub(since));
                        if running > limit {
                            on_stuck(running);
                            return;
                        }
                    }
                    std::thread::sleep(tick);
                }
            })
            .expect("spawning a watchdog thread");
        Self { busy_since_ms }
    }

    /// Starts watching a call.
    pub(crate) fn begin(&self) {
        self.busy_since_ms.store(now_ms().max(1), Ordering::SeqCst);
    }

    /// The call returned.
    pub(crate) fn end(&self) {
        self.busy_since_ms.store(0, Ordering::SeqCst);
    }
}

/// What the transactional producers do when a call hangs: say why, then exit with
/// [`STUCK_EXIT_CODE`].
pub(crate) fn exit_stuck(what: String) -> impl FnOnce(Duration) + Send + 'static {
    move |running| {
        tracing::error!(
            running_s = running.as_secs(),
            exit_code = STUCK_EXIT_CODE,
            "{what} has blocked past every timeout (librdkafka#5456); exiting so that the \
             process is restarted, which aborts the open transaction"
        );
        eprintln!(
            "herald: {what} blocked for {}s; exiting with status {STUCK_EXIT_CODE} to be restarted",
            running.as_secs()
        );
        std::process::exit(STUCK_EXIT_CODE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    #[test]
    fn a_call_past_its_limit_trips_the_watchdog_and_a_quick_one_does_not() {
        let tripped = Arc::new(AtomicBool::new(false));
        let flag = tripped.clone();
        let dog = Watchdog::spawn(
            "test",
            Duration::from_millis(300),
            Duration::from_millis(20),
            move |_| flag.store(true, Ordering::SeqCst),
        );
        dog.begin();
        std::thread::sleep(Duration::from_millis(50));
        dog.end();
        std::thread::sleep(Duration::from_millis(400));
        assert!(!tripped.load(Ordering::SeqCst), "a quick call tripped it");
        dog.begin();
        std::thread::sleep(Duration::from_millis(700));
        assert!(
            tripped.load(Ordering::SeqCst),
            "a hung call did not trip it"
        );
    }
}
