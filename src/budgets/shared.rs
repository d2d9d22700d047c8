//! One budget per client across replicas, through Redis (`[shared] redis_url`).
//!
//! Each replica leases slices of a client's allowance from one Redis hash per client and
//! period (`flexgate:budget:CLIENT:PERIOD_START`, a field per replica, expiring after the
//! period ends) and admits from its local slice, so no request waits on Redis. One task
//! per process keeps the slices topped up in the background: an atomic Lua script adds
//! the replica's overshoot, sums every replica's field and grants at most what is left
//! of the limit. After Redis lost its data, each replica's next call writes its own
//! field back, so the shared count reconciles itself. A clean shutdown returns the
//! unused part of the slice.
//!
//! A slice is sized to the client's pace on the replica: four seconds of its spend
//! (never less than the base size, never more than a quarter of the limit), and the next
//! one is asked for when half of it is left. So what is left when the next one is asked
//! for lasts longer than a call to Redis may take ([`CALL_TIMEOUT`]): a busy client is not
//! refused between two slices, and a Redis that stalls is noticed before the slice in hand
//! runs out. An idle replica holds little.
//!
//! While Redis cannot be reached (or does not answer within [`CALL_TIMEOUT`]), `fail =
//! "open"` budgets are enforced locally (each replica against the whole limit) and `fail
//! = "closed"` ones are served only from the slice already leased; `/readyz` and
//! `flexgate_shared_state_up` say so.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use redis::aio::ConnectionManager;

use super::{Budgets, ClientBudget, FailMode};
use crate::shared::{CALL_TIMEOUT, Link, RECONNECT, connect, timed_out};

/// Slices are checked (and Redis pinged, when no budget is shared) at least this often,
/// so a Redis that returns is noticed.
const TICK: Duration = Duration::from_millis(500);
/// The hash outlives its period by this much, so a late report still lands in it.
const EXPIRE_MARGIN_SECS: u64 = 3600;

/// Grant a slice: KEYS[1] the hash; ARGV replica, what the replica has counted in this
/// period, the slice it asks for, the limit, when the hash expires, the replica's spend.
/// The replica's field is raised to what it has counted (its overshoot, or its whole
/// count after Redis lost its data), and its spend field (`s:REPLICA`, shown to the
/// other replicas, never enforced) to its spend; then the grant is what is left of the
/// limit, at most the slice asked for. Returns the replica's field, the total of the
/// counted fields and of the spend fields. Amounts are nano-dollars: Lua's numbers are
/// doubles, exact below 2^53 (9 million USD).
const LEASE: &str = r"
local mine = tonumber(ARGV[2])
local field = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if field < mine then
  field = mine
  redis.call('HSET', KEYS[1], ARGV[1], string.format('%d', field))
end
local spent_field = 's:' .. ARGV[1]
if tonumber(redis.call('HGET', KEYS[1], spent_field) or '0') < tonumber(ARGV[6]) then
  redis.call('HSET', KEYS[1], spent_field, ARGV[6])
end
local total, spent = 0, 0
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if string.sub(all[i], 1, 2) == 's:' then
    spent = spent + tonumber(all[i + 1])
  else
    total = total + tonumber(all[i + 1])
  end
end
local grant = math.min(tonumber(ARGV[3]), math.max(tonumber(ARGV[4]) - total, 0))
if grant > 0 then
  field = field + grant
  total = total + grant
  redis.call('HSET', KEYS[1], ARGV[1], string.format('%d', field))
end
redis.call('EXPIREAT', KEYS[1], ARGV[5])
return {field, total, spent}
";

/// Return the unused slice: lower the replica's field to what it has counted.
const RELEASE: &str = r"
local field = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if field > tonumber(ARGV[2]) then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
return 1
";

/// What the shared-state task needs of one account (`shared`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseView {
    pub start: u64,
    pub end: u64,
    /// What this replica must count in Redis: its slices, or its spend when larger.
    pub counted: u64,
    /// This replica's spend.
    pub spent: u64,
    /// What is left of the slices after spend and reservations.
    pub headroom: u64,
    pub lease: u64,
}

impl ClientBudget {
    /// What this replica may hold in spend and reservations: the limit, or with shared
    /// state the slices leased from Redis (and, while Redis is unreachable with
    /// `fail = "open"`, the limit again).
    pub(super) fn ceiling(&self, a: &super::Account) -> u64 {
        match &self.link {
            Some(link) if link.is_up() || self.limits.fail == FailMode::Closed => a.granted.min(self.limits.limit),
            _ => self.limits.limit,
        }
    }

    /// The account as the shared-state task sees it.
    pub fn lease_view(&self, now: u64) -> LeaseView {
        let mut a = self.account.lock();
        self.current(&mut a, now);
        LeaseView {
            start: a.window.0,
            end: a.window.1,
            counted: a.granted.max(a.spent),
            spent: a.spent,
            headroom: a.granted.saturating_sub(a.spent.saturating_add(a.reserved)),
            lease: self.lease.load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// Redis counts `field` for this replica in the period starting at `start`, and
    /// `others` spent by the other replicas.
    pub fn granted(&self, start: u64, field: u64, others: u64) {
        let mut a = self.account.lock();
        if a.window.0 == start {
            a.granted = a.granted.max(field);
            a.others = others;
        }
    }
}

/// The scripts, hashed once: each call sends the SHA1 (EVALSHA), the text only when
/// Redis does not have it yet (after a restart).
static LEASE_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(LEASE));
static RELEASE_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(RELEASE));

/// The slice a replica leases at a time: four reservations or 1% of the limit,
/// whichever is larger, and never more than the limit.
pub fn lease_size(limit: u64, reserve: u64) -> u64 {
    reserve.saturating_mul(4).max(limit / 100).clamp(1, limit.max(1))
}

/// Each client's pace, by name.
type Paces = std::collections::HashMap<String, Pace>;

/// How long a slice should last at the client's pace on this replica: four calls'
/// timeouts, so that the half left when the next one is asked for outlasts two.
const SLICE_LASTS: Duration = Duration::from_secs(4);
/// The pace is measured over windows this long.
const PACE_WINDOW: Duration = Duration::from_secs(2);
/// Spend over less time than this says nothing about the pace yet.
const PACE_MIN_SPAN: Duration = Duration::from_millis(10);

/// One client's pace of spend on this replica, as the shared-state task sees it at its
/// calls: the spend per second of the current window, or of the last whole one when that
/// was higher (so the pace rises at once and falls within two windows).
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    since: tokio::time::Instant,
    from: u64,
    last_window: f64,
}

impl Pace {
    fn new(spent: u64, now: tokio::time::Instant) -> Self {
        Self { since: now, from: spent, last_window: 0.0 }
    }

    /// Take the spend seen `now`; the slice size for this pace: [`SLICE_LASTS`] of spend,
    /// at least `base`, at most a quarter of `limit`.
    #[expect(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a pace in nano-dollars per second: a float's precision is plenty, and the size is clamped to u64 bounds"
    )]
    fn size(&mut self, spent: u64, now: tokio::time::Instant, base: u64, limit: u64) -> u64 {
        if spent < self.from {
            // A new period: the pace goes on, measured from here.
            (self.since, self.from) = (now, spent);
        }
        let span = now.saturating_duration_since(self.since);
        let current = if span >= PACE_MIN_SPAN { (spent - self.from) as f64 / span.as_secs_f64() } else { 0.0 };
        let per_second = current.max(self.last_window);
        if span >= PACE_WINDOW {
            (self.since, self.from, self.last_window) = (now, spent, current);
        }
        let paced = (per_second * SLICE_LASTS.as_secs_f64()).min(u64::MAX as f64) as u64;
        paced.min(limit / 4).max(base)
    }
}

fn key(budget: &ClientBudget, start: u64) -> String {
    format!("flexgate:budget:{}:{start}", budget.limits.client)
}

/// Top up one client's slice, sized to its pace, and report its overshoot.
async fn lease(
    con: &mut ConnectionManager,
    link: &Link,
    budget: &ClientBudget,
    pace: &mut Pace,
) -> redis::RedisResult<()> {
    let now = super::now_secs();
    let view = budget.lease_view(now);
    let base = lease_size(budget.limits.limit, budget.limits.reserve);
    let size = pace.size(view.spent, tokio::time::Instant::now(), base, budget.limits.limit);
    budget.lease.store(size, std::sync::atomic::Ordering::Relaxed);
    let ask = if view.headroom < size / 2 { size } else { 0 };
    let (field, total, spent): (u64, u64, u64) = LEASE_SCRIPT
        .key(key(budget, view.start))
        .arg(&link.replica)
        .arg(view.counted)
        .arg(ask)
        .arg(budget.limits.limit)
        .arg(view.end.saturating_add(EXPIRE_MARGIN_SECS))
        .arg(view.spent)
        .invoke_async(con)
        .await?;
    budget.granted(view.start, field, spent.saturating_sub(view.spent));
    tracing::trace!(client = %budget.limits.client, field, total, spent, "shared budget slice");
    Ok(())
}

/// Top up every slice; with no budget, only see that Redis answers (the admission notes
/// need it too, and `/readyz` says whether it does).
async fn lease_all(
    con: &mut ConnectionManager,
    link: &Link,
    budgets: &Budgets,
    paces: &mut Paces,
) -> redis::RedisResult<()> {
    if budgets.is_empty() {
        let ping = redis::cmd("PING");
        return tokio::time::timeout(CALL_TIMEOUT, ping.query_async::<String>(con))
            .await
            .map_err(|_| timed_out())?
            .map(drop);
    }
    for budget in budgets.iter() {
        let pace = paces
            .entry(budget.limits.client.clone())
            .or_insert_with(|| Pace::new(budget.lease_view(super::now_secs()).spent, tokio::time::Instant::now()));
        tokio::time::timeout(CALL_TIMEOUT, lease(con, link, budget, pace)).await.map_err(|_| timed_out())??;
    }
    Ok(())
}

/// Connect and lease every client's first slice, for at most `wait`: called before the
/// gateway serves, so a reachable Redis is in use from the first request. Whatever
/// happens the gateway starts; [`run`] keeps trying.
pub async fn start(url: &str, link: &Link, budgets: &Budgets, wait: Duration) -> Option<ConnectionManager> {
    let attempt = async {
        let mut con = connect(url).await?;
        lease_all(&mut con, link, budgets, &mut Paces::new()).await?;
        Ok::<_, redis::RedisError>(con)
    };
    match tokio::time::timeout(wait, attempt).await {
        Ok(Ok(con)) => {
            link.set_up(true, &"");
            Some(con)
        }
        Ok(Err(error)) => {
            link.set_up(false, &"");
            tracing::warn!(error = %error, "shared state: Redis unreachable at start; serving on local state");
            None
        }
        Err(_) => {
            tracing::warn!("shared state: Redis did not answer at start; serving on local state");
            None
        }
    }
}

/// Keep every slice topped up for as long as the gateway runs.
pub async fn run(url: String, link: Arc<Link>, budgets: Arc<Budgets>, mut con: Option<ConnectionManager>) {
    let mut paces = Paces::new();
    loop {
        let Some(c) = con.as_mut() else {
            match tokio::time::timeout(CALL_TIMEOUT * 2, connect(&url)).await {
                Ok(Ok(c)) => con = Some(c),
                Ok(Err(error)) => link.set_up(false, &error),
                Err(_) => link.set_up(false, &"connect timed out"),
            }
            if con.is_none() {
                tokio::time::sleep(RECONNECT).await;
            }
            continue;
        };
        match lease_all(c, &link, &budgets, &mut paces).await {
            Ok(()) => link.set_up(true, &""),
            // The connection manager reconnects by itself on the next call.
            Err(error) => link.set_up(false, &error),
        }
        let _ = tokio::time::timeout(TICK, link.wake.notified()).await;
    }
}

/// Give back the unused part of every slice (at shutdown).
pub async fn release(url: &str, link: &Link, budgets: &Budgets, con: Option<ConnectionManager>) {
    let call = async {
        let mut con = match con {
            Some(c) => c,
            None => connect(url).await?,
        };
        for budget in budgets.iter() {
            let view = budget.lease_view(super::now_secs());
            let () = RELEASE_SCRIPT
                .key(key(budget, view.start))
                .arg(&link.replica)
                .arg(view.counted.saturating_sub(view.headroom))
                .invoke_async::<i64>(&mut con)
                .await
                .map(drop)?;
        }
        Ok::<_, redis::RedisError>(())
    };
    match tokio::time::timeout(CALL_TIMEOUT * 2, call).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::warn!(error = %error, "shared state: could not return unused budget slices"),
        Err(_) => tracing::warn!("shared state: Redis did not answer; unused budget slices not returned"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budgets::{BudgetLimits, NANOS_PER_USD, OnSoft, Period};

    const CENT: u64 = NANOS_PER_USD / 100;

    fn budgets(fail: FailMode) -> (Budgets, Arc<Link>) {
        let limits = BudgetLimits {
            client: "team-a".into(),
            limit: 10 * CENT,
            period: Period::Day,
            soft: None,
            on_soft: OnSoft::Nothing,
            fail,
            reserve: CENT,
        };
        let link = Arc::new(Link::new("host:/data"));
        (Budgets::with_link(&[limits], Some(Arc::clone(&link))), link)
    }

    /// How many requests in a row are admitted (their reservations held).
    fn admitted(b: &Budgets) -> (usize, Vec<crate::budgets::BudgetAdmission>) {
        let mut held = Vec::new();
        while let Ok(Some(a)) = b.admit(Some("team-a"), crate::budgets::Estimate::default) {
            held.push(a);
            assert!(held.len() <= 100);
        }
        (held.len(), held)
    }

    #[test]
    fn a_slice_is_four_reservations_or_a_hundredth_of_the_limit_within_the_limit() {
        assert_eq!(lease_size(10 * NANOS_PER_USD, CENT), 10 * CENT);
        assert_eq!(lease_size(NANOS_PER_USD, CENT), 4 * CENT);
        assert_eq!(lease_size(2 * CENT, CENT), 2 * CENT);
        assert_eq!(lease_size(0, 0), 1);
    }

    #[test]
    fn with_redis_up_a_replica_admits_only_from_its_slices() {
        let (b, link) = budgets(FailMode::Open);
        link.set_up(true, &"");
        assert_eq!(admitted(&b).0, 0, "nothing leased yet");
        let budget = b.client(Some("team-a")).unwrap();
        let view = budget.lease_view(super::super::now_secs());
        assert_eq!((view.counted, view.headroom, view.lease), (0, 0, 4 * CENT));
        budget.granted(view.start, 3 * CENT, 0);
        let (n, held) = admitted(&b);
        assert_eq!(n, 3);
        drop(held);
        // A slice granted for another period is not this one's.
        budget.granted(view.start + 1, 9 * CENT, 0);
        assert_eq!(admitted(&b).0, 3);
    }

    #[test]
    fn with_redis_down_fail_open_serves_the_whole_limit_and_fail_closed_only_its_slice() {
        let (open, _) = budgets(FailMode::Open);
        assert_eq!(admitted(&open).0, 10);
        let (closed, link) = budgets(FailMode::Closed);
        assert_eq!(admitted(&closed).0, 0);
        let budget = closed.client(Some("team-a")).unwrap();
        budget.granted(budget.lease_view(super::super::now_secs()).start, 2 * CENT, 0);
        link.set_up(false, &"");
        assert_eq!(admitted(&closed).0, 2);
    }

    #[test]
    fn a_slice_lasts_four_seconds_of_the_clients_pace() {
        let t0 = tokio::time::Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let (base, limit) = (4 * CENT, 10_000 * CENT);
        let mut pace = Pace::new(0, t0);
        // Spend over too short a span to judge: the base size.
        assert_eq!(pace.size(CENT, ms(5), base, limit), base);
        // 20 cents in the first 200 ms: 100 cents a second, a slice of 400.
        assert_eq!(pace.size(20 * CENT, ms(200), base, limit), 400 * CENT);
        // The window ends at 2 s with 40 cents spent: 20 a second; the next window starts.
        assert_eq!(pace.size(40 * CENT, ms(2000), base, limit), 80 * CENT);
        // A quiet start of the next window: the last whole window's pace holds.
        assert_eq!(pace.size(40 * CENT, ms(2500), base, limit), 80 * CENT);
        // A burst, 500 cents in the window's first second: the slice follows at once, at
        // most a quarter of the limit.
        assert_eq!(pace.size(540 * CENT, ms(3000), base, limit), 2000 * CENT);
        assert_eq!(pace.size(9000 * CENT, ms(3100), base, limit), limit / 4);
        // A new period (spend starts from zero again) keeps the pace measured so far.
        assert_eq!(pace.size(0, ms(3200), base, limit), 80 * CENT);
    }

    #[test]
    fn balances_show_the_other_replicas_spend() {
        let (b, _) = budgets(FailMode::Open);
        let budget = b.client(Some("team-a")).unwrap();
        let now = super::super::now_secs();
        budget.granted(budget.lease_view(now).start, 5 * CENT, 4 * CENT);
        let balance = budget.balance(now);
        assert_eq!((balance.spent, balance.remaining()), (4 * CENT, 6 * CENT));
    }
}
