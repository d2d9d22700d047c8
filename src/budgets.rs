//! Spending limits per client of managed auth (`[budgets.CLIENT]`): what each client
//! has spent in its current period, what its requests in flight hold, and the decision
//! to admit, send to flex only, or refuse a request.
//!
//! Money is counted in whole nano-dollars (`u64`, 1e-9 USD): exact for every price in
//! the table, and no float ever touches a balance. A request is admitted while the
//! client's spend plus the reservations of its requests in flight, this one's included,
//! stays within the limit. A request holds a [`Reservation`] of what it may cost,
//! estimated from the request (`estimate`; `reserve_usd` when the price table cannot
//! say), until it is settled, once, at the cost the ledger priced on the tier that
//! served it ($0 for a flex 429 or an error; a stream that ended without its usage at an
//! estimate of what it streamed), or released when the request dies unsettled. The
//! overshoot past the limit is therefore bounded by what requests cost beyond their
//! reservations.
//!
//! Spend survives a restart in the embedded store (`persist`): restored at start-up,
//! and written behind the request path whenever it changes. With `[shared] redis_url`,
//! replicas share one limit per client (`shared`): each admits from a slice of the
//! allowance leased from Redis in the background.

pub mod estimate;
mod period;
pub mod persist;
pub mod shared;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use rust_decimal::Decimal;
use tokio::sync::Notify;

use crate::error::GatewayError;

pub use estimate::Estimate;
pub use period::Period;

/// 9999-12-31T23:59:59Z, the last moment RFC 3339 can write.
const LAST_RFC3339_SECOND: u64 = 253_402_300_799;

/// Nano-dollars per dollar.
pub const NANOS_PER_USD: u64 = 1_000_000_000;

/// What a client may do past its soft limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnSoft {
    /// Only the metric and the remaining-budget header tell.
    Nothing,
    /// Every request goes to flex, without escalation to standard.
    FlexOnly,
}

/// Whether a client is served while the shared count is unknown (shared state only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailMode {
    Open,
    Closed,
}

/// One client's validated `[budgets.CLIENT]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetLimits {
    pub client: String,
    pub limit: u64,
    pub period: Period,
    pub soft: Option<u64>,
    pub on_soft: OnSoft,
    pub fail: FailMode,
    /// What a request holds while it is in flight when its cost cannot be estimated.
    pub reserve: u64,
}

/// Nano-dollars of a USD amount, rounded up (a fraction of a nano-dollar is never free);
/// `None` for a negative or unrepresentable amount.
pub fn nanos(usd: Decimal) -> Option<u64> {
    if usd.is_sign_negative() && !usd.is_zero() {
        return None;
    }
    let scaled = usd.checked_mul(Decimal::from(NANOS_PER_USD))?.ceil();
    u64::try_from(scaled).ok()
}

/// A nano-dollar amount as USD text, with no trailing zeros (`1.5`, `0.000123`). In
/// integers: every budgeted answer's header is formatted here, and a `Decimal` division
/// with `normalize` cost more instructions than the rest of the budget path together
/// (docs/benchmarks.md, "Budgets and shared state on the request path").
pub fn usd(nanos: u64) -> String {
    let (whole, fraction) = (nanos / NANOS_PER_USD, nanos % NANOS_PER_USD);
    if fraction == 0 {
        return whole.to_string();
    }
    let mut text = format!("{whole}.{fraction:09}");
    text.truncate(text.trim_end_matches('0').len());
    text
}

/// Seconds since the Unix epoch, now.
pub fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[derive(Debug, Clone, Copy, Default)]
struct Account {
    /// The current period, `[start, end)`.
    window: (u64, u64),
    spent: u64,
    /// Held by requests in flight (whatever period they started in).
    reserved: u64,
    /// Shared budgets: what this replica counts in Redis for the current period (its
    /// leased slices, and its spend past them).
    granted: u64,
    /// Shared budgets: the other replicas' spend in the current period, as of the last
    /// call to Redis. Shown in balances (headers, metrics, refusals), never enforced.
    others: u64,
}

/// One client's budget and its running account.
pub struct ClientBudget {
    limits: BudgetLimits,
    account: Mutex<Account>,
    /// Spend changed since it was last written to the store.
    dirty: AtomicBool,
    /// Wakes the store's writer (shared by every client).
    changed: Arc<Notify>,
    /// The shared count in Redis, when configured.
    link: Option<Arc<crate::shared::Link>>,
    /// The slice leased from Redis at a time: sized by the shared-state task to the
    /// client's pace on this replica (`shared::Pace`).
    lease: AtomicU64,
}

/// A snapshot of one client's account, for headers, metrics and refusals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Balance {
    pub limit: u64,
    pub spent: u64,
    pub reserved: u64,
    pub soft: Option<u64>,
    /// When the current period started (seconds since the epoch).
    pub period_start: u64,
    /// When the current period ends (seconds since the epoch).
    pub resets_at: u64,
}

impl Balance {
    pub fn remaining(&self) -> u64 {
        self.limit.saturating_sub(self.spent.saturating_add(self.reserved))
    }
}

impl ClientBudget {
    fn new(limits: BudgetLimits, changed: Arc<Notify>, link: Option<Arc<crate::shared::Link>>, now: u64) -> Self {
        let window = limits.period.window(now);
        let account = Mutex::new(Account { window, spent: 0, reserved: 0, granted: 0, others: 0 });
        let lease = AtomicU64::new(shared::lease_size(limits.limit, limits.reserve));
        Self { limits, account, dirty: AtomicBool::new(false), changed, link, lease }
    }

    pub fn limits(&self) -> &BudgetLimits {
        &self.limits
    }

    /// The account, moved into the period holding `now` (a new period starts from zero).
    fn current(&self, account: &mut Account, now: u64) {
        if now >= account.window.1 || now < account.window.0 {
            account.window = self.limits.period.window(now);
            account.spent = 0;
            account.granted = 0;
            account.others = 0;
        }
    }

    pub fn balance(&self, now: u64) -> Balance {
        let mut a = self.account.lock();
        self.current(&mut a, now);
        self.snapshot(&a)
    }

    fn snapshot(&self, a: &Account) -> Balance {
        Balance {
            limit: self.limits.limit,
            spent: a.spent.saturating_add(a.others),
            reserved: a.reserved,
            soft: self.limits.soft,
            period_start: a.window.0,
            resets_at: a.window.1,
        }
    }

    /// Admit a request that may cost `amount` at `now` (and whether it is past the soft
    /// limit with `on_soft = "flex_only"`), or refuse it with the client's balance.
    ///
    /// Admitted while something is left of what this replica may hold (the limit, or
    /// with shared state its slices) and the request's own reservation fits under the
    /// limit. A slice is not required to hold the whole reservation: one larger than a
    /// slice would otherwise never be admitted; what it costs past the slice is reported
    /// to Redis, once settled, as this replica's spend past its slices.
    fn reserve(self: &Arc<Self>, now: u64, amount: u64) -> Result<(Reservation, bool), Balance> {
        let mut a = self.account.lock();
        self.current(&mut a, now);
        let held = a.spent.saturating_add(a.reserved);
        let ceiling = self.ceiling(&a);
        if held >= ceiling || held.saturating_add(amount) > self.limits.limit {
            if let Some(link) = &self.link {
                // Out of slice: more may be left in Redis for the next request.
                link.wake();
            }
            return Err(self.snapshot(&a));
        }
        a.reserved = a.reserved.saturating_add(amount);
        if let Some(link) = &self.link
            && ceiling.saturating_sub(a.spent.saturating_add(a.reserved)) < self.lease.load(Ordering::Relaxed) / 2
        {
            link.wake();
        }
        let flex_only = self.limits.on_soft == OnSoft::FlexOnly && self.limits.soft.is_some_and(|s| held >= s);
        Ok((Reservation { budget: Some(Arc::clone(self)), amount }, flex_only))
    }

    /// A reservation taken whatever the balance: for usage that has already happened
    /// (a WebSocket turn), which is charged even past the limit.
    fn tab(self: &Arc<Self>) -> Reservation {
        let mut a = self.account.lock();
        self.current(&mut a, now_secs());
        a.reserved = a.reserved.saturating_add(self.limits.reserve);
        Reservation { budget: Some(Arc::clone(self)), amount: self.limits.reserve }
    }

    /// Give back a reservation of `amount` and book what the request cost.
    fn settle(&self, amount: u64, cost: u64, now: u64) {
        let mut a = self.account.lock();
        self.current(&mut a, now);
        a.reserved = a.reserved.saturating_sub(amount);
        if cost > 0 {
            a.spent = a.spent.saturating_add(cost);
            drop(a);
            self.dirty.store(true, Ordering::Release);
            self.changed.notify_one();
        }
    }

    /// Spend restored from the store for the period starting at `start`; ignored when
    /// that is no longer the current period. The larger amount wins, so spend booked
    /// before the restore is not lost.
    fn restore(&self, start: u64, spent: u64) {
        let mut a = self.account.lock();
        if a.window.0 == start {
            a.spent = a.spent.max(spent);
        }
    }

    fn mark_dirty(&self) {
        self.dirty.store(true, Ordering::Release);
    }

    /// The current period's start and spend, when it changed since the last call.
    fn take_dirty(&self) -> Option<(u64, u64)> {
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return None;
        }
        let a = self.account.lock();
        Some((a.window.0, a.spent))
    }
}

/// What one admitted request holds against its client's budget: its estimated cost, or
/// `reserve_usd`. Settled once by [`Reservation::settle`], which consumes it; dropped
/// unsettled (the request died first), it is released and books nothing.
#[derive(Default)]
pub struct Reservation {
    budget: Option<Arc<ClientBudget>>,
    /// Nano-dollars held.
    amount: u64,
}

impl Reservation {
    /// The client's balance now, with this request's reservation still held.
    pub fn balance(&self) -> Option<Balance> {
        self.budget.as_ref().map(|b| b.balance(now_secs()))
    }

    /// Whether the request has a budget to settle against.
    pub fn is_budgeted(&self) -> bool {
        self.budget.is_some()
    }

    /// What this reservation holds (nano-dollars).
    pub fn held(&self) -> u64 {
        if self.budget.is_some() { self.amount } else { 0 }
    }

    /// The client whose budget this is.
    pub fn client(&self) -> Option<&str> {
        self.budget.as_ref().map(|b| b.limits.client.as_str())
    }

    /// Book the request's cost (nano-dollars) and release its reservation.
    pub fn settle(mut self, cost: u64) {
        if let Some(budget) = self.budget.take() {
            budget.settle(self.amount, cost, now_secs());
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(budget) = self.budget.take() {
            budget.settle(self.amount, 0, now_secs());
        }
    }
}

impl ClientBudget {
    /// A hold for usage that already happened, settled by the ledger at its cost.
    pub fn charge(self: &Arc<Self>) -> Reservation {
        self.tab()
    }
}

/// A request admitted under its client's budget.
pub struct BudgetAdmission {
    pub reservation: Reservation,
    /// Past the soft limit with `on_soft = "flex_only"`: send to flex, never escalate.
    pub flex_only: bool,
    /// The request's input tokens as estimated from its body (0 when not estimated):
    /// what a stream that ends without its usage is charged for its input.
    pub input_tokens: u64,
}

/// Every client's budget, looked up by client name on each request.
#[derive(Default)]
pub struct Budgets {
    clients: HashMap<String, Arc<ClientBudget>>,
    /// Notified whenever a client's spend changes.
    changed: Arc<Notify>,
    link: Option<Arc<crate::shared::Link>>,
}

impl Budgets {
    pub fn new(limits: &[BudgetLimits]) -> Self {
        Self::with_link(limits, None)
    }

    /// Budgets whose limits are shared through `link` (`None`: each replica alone).
    pub fn with_link(limits: &[BudgetLimits], link: Option<Arc<crate::shared::Link>>) -> Self {
        let now = now_secs();
        let changed = Arc::new(Notify::new());
        let clients = limits
            .iter()
            .map(|l| {
                let budget = ClientBudget::new(l.clone(), Arc::clone(&changed), link.clone(), now);
                (l.client.clone(), Arc::new(budget))
            })
            .collect();
        Self { clients, changed, link }
    }

    /// The shared count's link, when `[shared] redis_url` is set and a budget exists.
    pub fn link(&self) -> Option<&Arc<crate::shared::Link>> {
        self.link.as_ref()
    }

    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<ClientBudget>> {
        self.clients.values()
    }

    /// Admit a request of `client` that may cost what `estimate` says: `Ok(None)` when
    /// the client has no budget, a reservation when the estimate (else `reserve_usd`)
    /// fits under its limit, the refusal when it does not. The estimate is made only for
    /// a budgeted client.
    pub fn admit(
        &self,
        client: Option<&str>,
        estimate: impl FnOnce() -> Estimate,
    ) -> Result<Option<BudgetAdmission>, GatewayError> {
        self.admit_at(client, estimate, now_secs())
    }

    /// A client's budget, for a WebSocket session to charge each turn to.
    pub fn client(&self, client: Option<&str>) -> Option<Arc<ClientBudget>> {
        client.and_then(|c| self.clients.get(c)).cloned()
    }

    fn admit_at(
        &self,
        client: Option<&str>,
        estimate: impl FnOnce() -> Estimate,
        now: u64,
    ) -> Result<Option<BudgetAdmission>, GatewayError> {
        let Some(budget) = client.and_then(|c| self.clients.get(c)) else {
            return Ok(None);
        };
        let estimate = estimate();
        let amount = estimate.cost.unwrap_or(budget.limits.reserve);
        match budget.reserve(now, amount) {
            Ok((reservation, flex_only)) => {
                Ok(Some(BudgetAdmission { reservation, flex_only, input_tokens: estimate.input_tokens }))
            }
            Err(balance) => Err(refusal(&budget.limits, &balance, amount, now)),
        }
    }
}

/// The 429 a client past its limit gets: who, how much, and when it resets; and when
/// something was left, what the request could have cost.
fn refusal(limits: &BudgetLimits, b: &Balance, amount: u64, now: u64) -> GatewayError {
    // RFC 3339 has four-digit years; the period's parser keeps windows far inside them.
    let reset = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(b.resets_at.min(LAST_RFC3339_SECOND));
    let left = b.remaining();
    let this = if left > 0 {
        format!(" This request may cost up to ${}, more than the ${} left.", usd(amount), usd(left))
    } else {
        String::new()
    };
    let message = format!(
        "Client `{}` has used its budget: ${} spent and ${} held by requests in flight, of a ${} limit per {}.{this} \
         It resets at {}.",
        limits.client,
        usd(b.spent),
        usd(b.reserved),
        usd(b.limit),
        limits.period.describe(),
        humantime::format_rfc3339_seconds(reset),
    );
    GatewayError::BudgetExceeded { message, retry_after: b.resets_at.saturating_sub(now).max(1), remaining: left }
}
