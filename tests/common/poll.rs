//! Waiting for a condition by polling it, for the tests: the condition, not a fixed
//! sleep, decides when a test goes on. On paused time each poll advances the clock.

use std::time::Duration;

use tokio::time::Instant;

/// How long [`eventually`] polls before giving up.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// Poll `check` every 10 ms until it holds, for at most `limit`; whether it held.
pub async fn eventually_within(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    check()
}

/// Poll `check` until it holds, for at most [`PATIENCE`]; whether it held.
pub async fn eventually(check: impl FnMut() -> bool) -> bool {
    eventually_within(PATIENCE, check).await
}
