//! The `herald` binary, run as a user runs it, against the real broker.

use std::process::Command;

fn herald() -> Command {
    Command::new(env!("CARGO_BIN_EXE_herald"))
}

#[test]
fn check_lists_the_broker_under_test() {
    let brokers = std::env::var("HERALD_TEST_BROKERS")
        .expect("HERALD_TEST_BROKERS is not set: run this through scripts/test");
    let output = herald()
        .args(["check", "--brokers", &brokers])
        .output()
        .expect("herald runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "herald check failed: {output:?}");
    assert!(
        stdout.contains(&format!("at {brokers}")) && stdout.contains("broker 1"),
        "unexpected output: {stdout}"
    );
}

#[test]
fn check_fails_with_a_clear_message_when_nothing_listens() {
    // Port 1 on loopback refuses connections; the check must fail, not hang or succeed.
    let output = herald()
        .args(["check", "--brokers", "127.0.0.1:1", "--timeout-secs", "2"])
        .output()
        .expect("herald runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "herald check succeeded against nothing"
    );
    assert!(
        stderr.contains("the Kafka cluster at 127.0.0.1:1 did not answer"),
        "unexpected error: {stderr}"
    );
}
