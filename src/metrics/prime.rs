//! Series created at zero on start, so that `rate()`, ratio alerts and dashboard panels
//! have data from the first scrape instead of "no data" until something happens.
//!
//! Every label value here comes from a closed set: the configured classes, the price
//! table's models (and `other`), the tiers, and the enums of outcomes, attempt results
//! and reasons. Models are crossed only with what can happen to them (the tiers they are
//! priced on; escalations and flex-ineligibility by whether they are flex-capable), and
//! the per-request families with `model="other"`, `tier="none"` only: the full product
//! would be thousands of series on a gateway that has served nothing.
//!
//! Not primed: `flexgate_upstream_ratelimit_remaining`, which is unknown until the
//! upstream answers (a 0 would read as an exhausted limit).

use super::Metrics;
use super::series::{ATTEMPT_RESULTS, OUTCOMES, TokenKind};
use crate::endpoint::Endpoint;
use crate::pricing::PriceTable;
use crate::tier::{self, Tier};

/// The `reason` label values of `flexgate_retries_total`: why an attempt is repeated
/// (`crate::upstream::classify::Reason`, whose tests hold it to this list).
pub const RETRY_REASONS: [&str; 5] = ["flex_capacity", "rate_limit", "server_error", "connect_error", "timeout"];
/// The `reason` label values of `flexgate_escalations_total`: a retry reason, the
/// deadline's escalation point reached (waiting for admission included), or the retry
/// budget spent.
pub const ESCALATION_REASONS: [&str; 7] =
    ["flex_capacity", "rate_limit", "server_error", "connect_error", "timeout", "deadline", "retry_budget"];

impl Metrics {
    /// Create, at zero, the series of every label combination the configuration knows.
    pub fn prime(&self, classes: &[&str], prices: &PriceTable) {
        self.build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        let none = tier::label(None);
        for endpoint in Endpoint::ALL.map(Endpoint::as_str) {
            self.overhead.with_label_values(&[endpoint]);
            self.usage_missing.with_label_values(&[endpoint]);
            for class in classes {
                self.request_duration.with_label_values(&[endpoint, class, none]);
                for outcome in OUTCOMES {
                    self.requests.with_label_values(&[endpoint, class, "other", none, outcome.as_str()]);
                }
            }
        }
        for tier in Tier::ALL.map(Tier::as_str) {
            for result in ATTEMPT_RESULTS {
                self.upstream_attempts.with_label_values(&[tier, result.as_str()]);
            }
            for reason in RETRY_REASONS {
                self.retries.with_label_values(&[tier, reason]);
            }
        }
        for class in classes {
            self.inflight.with_label_values(&[class]).set(0);
            self.deadline_exceeded.with_label_values(&[class]);
            for tier in [Tier::Flex, Tier::Standard].map(Tier::as_str) {
                self.time_to_first_byte.with_label_values(&[class, tier]);
            }
        }
        self.cost_unknown.with_label_values(&["other"]);
        self.flex_ineligible.with_label_values(&["other"]);
        for model in prices.models() {
            self.prime_model(classes, prices, model);
        }
    }

    fn prime_model(&self, classes: &[&str], prices: &PriceTable, model: &str) {
        let tiers: Vec<&str> = Tier::ALL.into_iter().filter(|&t| prices.offers(model, t)).map(Tier::as_str).collect();
        for tier in &tiers {
            for kind in TokenKind::ALL {
                self.tokens.with_label_values(&[model, tier, kind.as_str()]);
            }
        }
        if prices.is_flex_capable(model) {
            for class in classes {
                for reason in ESCALATION_REASONS {
                    self.escalations.with_label_values(&[class, model, reason]);
                }
            }
        } else {
            self.flex_ineligible.with_label_values(&[model]);
        }
        for class in classes {
            self.savings_usd.with_label_values(&[class, model]);
            for tier in &tiers {
                self.cost_usd.with_label_values(&[class, model, tier]);
            }
        }
    }
}
