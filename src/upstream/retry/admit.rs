//! The retry loop's question to the admission controller before each attempt, and the
//! bookkeeping of the time it waited.

use std::time::Duration;

use tokio::time::Instant;

use super::{GiveUp, Labels};
use crate::admission::{Admit, Ask, Model, Permit, WaitReason};
use crate::metrics::Metrics;
use crate::routing::Plan;
use crate::tier::Tier;
use crate::upstream::classify::Reason;

/// Time a request spent waiting for admission (in milliseconds: it lives in every held
/// request's future, so it is kept small), and why it first had to.
#[derive(Debug, Default, Clone, Copy)]
pub struct Queued {
    ms: u32,
    pub why: Option<WaitReason>,
}

impl Queued {
    pub fn total(self) -> Duration {
        Duration::from_millis(self.ms.into())
    }
}

/// What the loop does next.
pub enum Next<'g> {
    Go(Permit<'g>),
    /// Move to standard now (the flex request's latest safe start, or shutdown).
    Escalate,
    GiveUp(GiveUp),
}

/// Where the request stands when it asks.
pub struct Asking<'a> {
    pub plan: &'a Plan,
    pub tier: Option<Tier>,
    pub attempts: u32,
    pub escalate_at: Instant,
    pub deadline: Instant,
    pub saw_capacity: bool,
}

/// Ask `gate` for the next attempt, waiting as it says; time waited is added to `queued`
/// and to the request's time spent on the upstream's account.
pub async fn next<'g>(
    gate: &'g Model,
    asking: &Asking<'_>,
    metrics: &Metrics,
    labels: Labels<'_>,
    queued: &mut Queued,
    upstream_time: &mut Duration,
) -> Next<'g> {
    let flexing = asking.tier == Some(Tier::Flex) && asking.plan.escalate;
    let ask = Ask {
        tier: asking.tier,
        urgent: asking.attempts == 0 && asking.plan.tier != Some(Tier::Flex),
        first: asking.attempts == 0,
        may_escalate: flexing,
        escalate_at: if flexing { asking.escalate_at } else { asking.deadline },
        deadline: asking.deadline,
    };
    let admitted = gate.admit(ask).await;
    if let Some(why) = admitted.why {
        let ms = u32::try_from(admitted.waited.as_millis()).unwrap_or(u32::MAX);
        queued.ms = queued.ms.saturating_add(ms);
        *upstream_time += admitted.waited;
        queued.why = queued.why.or(Some(why));
        metrics.admission.wait(labels.model, why, admitted.waited);
    }
    match admitted.admit {
        Admit::Go(permit) => Next::Go(permit),
        Admit::Escalate => {
            metrics.escalation(labels.class, labels.model, "deadline").inc();
            tracing::debug!(attempt = asking.attempts, "escalating flex to standard at its latest safe start");
            Next::Escalate
        }
        Admit::Expired => {
            metrics.admission.shed(labels.model, "deadline");
            let flex_wait =
                matches!(queued.why, Some(WaitReason::FlexClosed | WaitReason::FlexLimit | WaitReason::FlexThrottled));
            Next::GiveUp(if asking.tier == Some(Tier::Flex) && (asking.saw_capacity || flex_wait) {
                GiveUp::FlexUnavailable
            } else {
                GiveUp::Deadline
            })
        }
    }
}

/// Whether a retry after `reason` is past the model's retry budget (flex capacity retries
/// are paced by flex control instead): `Some` with how long until a retry is likely to
/// fit again. Counts the shed when it is.
pub fn over_budget(
    gate: &Model,
    reason: Reason,
    now: Instant,
    metrics: &Metrics,
    labels: Labels<'_>,
) -> Option<Duration> {
    if reason == Reason::FlexCapacity {
        return None;
    }
    let wait = gate.try_retry(now).err()?;
    metrics.admission.shed(labels.model, "retry_budget");
    Some(wait)
}
