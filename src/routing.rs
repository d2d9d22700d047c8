//! Assigns each request a class and a tier plan, and computes its deadline.
//!
//! Class assignment, first match wins, from the most explicit signal to the least (the
//! client's own words, then the operator's path and rules, then the default):
//! 1. an explicit `service_tier` in the body (`flex`, `default`, `priority`, `fast`) when
//!    `routing.honor_client_tier` — `flex` picks `routing.flex_class`, the others
//!    `routing.standard_class`, and the client's tier is kept;
//! 2. header `x-flexgate-class` (an unknown name is a 400 listing the classes);
//! 3. the lane's path prefix (`/flex/v1` → `background`);
//! 4. config rules (client key name, model, header value), all conditions must match;
//! 5. `routing.default_class`.
//!
//! Only models the price table marks flex-capable go to flex; others are served on
//! standard and counted.

mod deadline;

use std::time::Duration;

use http::{HeaderMap, HeaderName};

use crate::config::{ClassId, Config, Escalate};
use crate::error::GatewayError;
use crate::tier::Tier;

pub use deadline::effective_deadline;

/// Everything routing looks at for one request.
#[derive(Debug, Clone, Copy)]
pub struct RouteInput<'a> {
    pub headers: &'a HeaderMap,
    /// The class of the path prefix the request came in on, if any.
    pub lane: Option<ClassId>,
    /// The gateway key's client name (managed auth).
    pub client: Option<&'a str>,
    pub model: Option<&'a str>,
    /// The client's explicit `service_tier`.
    pub client_tier: Option<&'a str>,
    /// Whether the endpoint takes `service_tier` (chat completions, Responses).
    pub tier_routed: bool,
}

/// The decision for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub class: ClassId,
    /// The tier tried first; `None` for endpoints without tiers.
    pub tier: Option<Tier>,
    /// The `service_tier` string the first attempt must carry; `None` leaves the body as sent.
    pub tier_override: Option<&'static str>,
    /// Whether flex may move to standard before the deadline.
    pub escalate: bool,
    pub escalate_reserve: Duration,
    pub deadline: Duration,
    pub max_attempts: u32,
    /// The class wanted flex but the model is not flex-capable.
    pub flex_ineligible: bool,
}

/// The class a client asks for, and the class an answer was served as (a constant: a
/// lookup by `&str` parses the name each time).
pub const X_CLASS: HeaderName = HeaderName::from_static("x-flexgate-class");

fn header_class(config: &Config, headers: &HeaderMap) -> Result<Option<ClassId>, GatewayError> {
    let Some(value) = headers.get(X_CLASS) else {
        return Ok(None);
    };
    let name = value.to_str().unwrap_or_default().trim();
    config.class_by_name(name).map(Some).ok_or_else(|| GatewayError::UnknownClass {
        name: name.chars().take(64).collect(),
        valid: config.classes.iter().map(|c| format!("`{}`", c.name)).collect::<Vec<_>>().join(", "),
    })
}

fn rule_class(config: &Config, input: &RouteInput<'_>) -> Option<ClassId> {
    let model = input.model.map(|m| config.pricing.resolve(m).unwrap_or(m));
    config.routing.rules.iter().find_map(|rule| {
        let client_ok = rule.client.as_deref().is_none_or(|c| input.client == Some(c));
        let model_ok = rule.model.as_deref().is_none_or(|want| {
            let want = config.pricing.resolve(want).unwrap_or(want);
            model == Some(want)
        });
        let header_ok = rule.header.as_ref().is_none_or(|(name, value)| {
            input.headers.get(name).and_then(|v| v.to_str().ok()).is_some_and(|v| v.trim() == value)
        });
        (client_ok && model_ok && header_ok).then_some(rule.class)
    })
}

/// Assign the class and tier plan for a request.
pub fn plan(config: &Config, input: &RouteInput<'_>) -> Result<Plan, GatewayError> {
    // The header is validated even when an earlier rule wins, so typos never go unnoticed.
    let from_header = header_class(config, input.headers)?;
    let explicit =
        input.client_tier.filter(|_| config.routing.honor_client_tier && input.tier_routed).and_then(Tier::from_client);
    let class_id = match explicit {
        Some(Tier::Flex) => config.routing.flex_class,
        Some(_) => config.routing.standard_class,
        None => {
            from_header.or(input.lane).or_else(|| rule_class(config, input)).unwrap_or(config.routing.default_class)
        }
    };
    let class = config.class(class_id);
    let mut tier = explicit.unwrap_or(class.tier);
    let mut flex_ineligible = false;
    if tier == Tier::Flex && !input.model.is_some_and(|m| config.pricing.is_flex_capable(m)) {
        tier = Tier::Standard;
        flex_ineligible = input.tier_routed;
    }
    let tier = input.tier_routed.then_some(tier);
    // Rewrite only when the body does not already ask for this tier; a standard request
    // with no explicit tier is left as sent.
    let tier_override = tier.and_then(|t| {
        let wanted = t.param();
        let sent = input.client_tier;
        let already = sent.is_some_and(|s| Tier::from_client(s) == Some(t));
        let leave = already || (t == Tier::Standard && sent.is_none_or(|s| s == "auto"));
        (!leave).then_some(wanted)
    });
    let deadline = effective_deadline(config, class.deadline, input.headers)?;
    Ok(Plan {
        class: class_id,
        tier,
        tier_override,
        escalate: tier == Some(Tier::Flex) && class.escalate == Escalate::Standard,
        // A deadline shorter than the reserve still gives flex half of it.
        escalate_reserve: class.escalate_reserve.min(deadline / 2),
        deadline,
        max_attempts: class.max_attempts,
        flex_ineligible,
    })
}

/// A client past its soft budget with `on_soft = "flex_only"`: a flex-capable model goes
/// to flex, and nothing escalates to standard (a cost cap that still serves).
pub fn flex_only(plan: &mut Plan, config: &Config, input: &RouteInput<'_>) {
    plan.escalate = false;
    let capable = input.model.is_some_and(|m| config.pricing.is_flex_capable(m));
    if !input.tier_routed || !capable || plan.tier == Some(Tier::Flex) {
        return;
    }
    plan.tier = Some(Tier::Flex);
    let sent_flex = input.client_tier.and_then(Tier::from_client) == Some(Tier::Flex);
    plan.tier_override = (!sent_flex).then_some(Tier::Flex.param());
}

#[cfg(test)]
mod tests;
