//! The idle-connection reaper: nobody polls an idle HTTP/1.1 connection, so every so
//! often one task checks them all and closes those that expired or that the server
//! closed. It starts with the first connection kept idle and ends with the pool.

use std::sync::Weak;
use std::time::Duration;

use super::Shared;

/// How often the reaper looks for idle connections the server closed or that expired.
const SWEEP_EVERY: Duration = Duration::from_secs(5);

/// Sweep the idle connections every so often (`Shared::sweep`). Ends with the pool.
pub(super) fn spawn(pool: Weak<Shared>, idle_timeout: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SWEEP_EVERY.min(idle_timeout).max(Duration::from_millis(100)));
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(pool) = pool.upgrade() else { return };
            pool.sweep();
        }
    });
}

impl Shared {
    /// Close idle connections that expired or that the server closed, so a quiet gateway
    /// does not keep sockets (and the upstream's patience) forever: nobody else polls an
    /// idle connection.
    pub(super) fn sweep(&self) {
        let timeout = self.settings.idle_timeout;
        // Checked outside the lock (a check may read the socket), and closed sockets are
        // dropped outside it too. What went back meanwhile is newer: it stays last. The
        // reaper runs on one thread and checks every thread's list: a no-op-waker poll
        // only reads the readiness the owning thread's I/O driver recorded.
        for list in &self.idle {
            let mut checked = std::mem::take(&mut *list.lock());
            checked.retain_mut(|i| i.since.elapsed() < timeout && i.conn.is_reusable());
            let mut idle = list.lock();
            let newer = std::mem::replace(&mut *idle, checked);
            idle.extend(newer);
        }
    }
}
