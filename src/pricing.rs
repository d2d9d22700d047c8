//! Model catalog and cost: which models exist, which are flex-capable, and what a
//! request's [`Usage`] cost on the tier the response reports. Pure `Decimal` arithmetic
//! (never `f64`), overflow-checked, and never fails a request: an unknown model or an
//! unpriced tier gives `None` for the caller to count.
//!
//! The default table is `config/pricing.toml`, embedded at build time; a user file
//! replaces it whole ([`PriceTable::from_toml`]).

mod load;
#[cfg(test)]
mod tests;

use crate::tier::Tier;
use crate::usage::Usage;
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

/// The shipped price table (`config/pricing.toml`).
pub const EMBEDDED_TOML: &str = include_str!("../config/pricing.toml");

/// USD per **token** (normalized from the file's per-1M prices at load).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rates {
    pub input: Decimal,
    /// Equals `input` when the file gives no cached price for the tier.
    pub cached_input: Decimal,
    pub output: Decimal,
}

/// Every problem found in a price table, each naming its key, e.g.
/// ``"`models.\"gpt-5\".flex.input`: must not be negative"``.
#[derive(Debug, thiserror::Error)]
#[error("invalid price table: {}", .0.join("; "))]
pub struct PricingErrors(pub Vec<String>);

/// The model catalog with prices. Cloning is cheap (one `Arc`).
#[derive(Clone, Debug)]
pub struct PriceTable {
    inner: Arc<Catalog>,
}

#[derive(Debug)]
struct Catalog {
    prices_as_of: String,
    models: BTreeMap<String, ModelPrices>,
}

#[derive(Debug)]
struct ModelPrices {
    flex_capable: bool,
    /// Indexed by [`Tier::index`]; `None`: the model is not sold on that tier.
    tiers: [Option<Rates>; 4],
}

static EMBEDDED: LazyLock<Result<PriceTable, PricingErrors>> = LazyLock::new(|| PriceTable::from_toml(EMBEDDED_TOML));

// === impl PriceTable ===

impl PriceTable {
    /// The shipped default, parsed once per process. (A unit test asserts it loads; were
    /// it ever broken, this returns an empty table, under which every cost is `None`
    /// and counted, rather than panicking.)
    pub fn embedded() -> PriceTable {
        match &*EMBEDDED {
            Ok(table) => table.clone(),
            Err(_) => PriceTable { inner: Arc::new(Catalog { prices_as_of: String::new(), models: BTreeMap::new() }) },
        }
    }

    /// Parse and validate a price table, collecting every problem.
    pub fn from_toml(text: &str) -> Result<PriceTable, PricingErrors> {
        let inner = Arc::new(load::parse(text)?);
        Ok(PriceTable { inner })
    }

    /// The catalog name for `model`: an exact match, else the name without a dated
    /// snapshot suffix `-YYYY-MM-DD` (`gpt-4o-mini-2024-07-18` → `gpt-4o-mini`). There is
    /// no prefix matching, so `gpt-5-mini` never resolves to `gpt-5`.
    pub fn resolve<'a>(&'a self, model: &str) -> Option<&'a str> {
        let models = &self.inner.models;
        if let Some((name, _)) = models.get_key_value(model) {
            return Some(name);
        }
        let base = strip_snapshot_date(model)?;
        models.get_key_value(base).map(|(name, _)| name.as_str())
    }

    /// May this model be sent to the flex tier? `false` for unknown models.
    pub fn is_flex_capable(&self, model: &str) -> bool {
        self.entry(model).is_some_and(|m| m.flex_capable)
    }

    /// Per-token rates of `model` on `tier`; `None` if unknown or not sold on that tier.
    pub fn rates(&self, model: &str, tier: Tier) -> Option<&Rates> {
        self.entry(model)?.tiers[tier.index()].as_ref()
    }

    /// USD cost: `(input − cached) × input + cached × cached_input + output × output`.
    /// Reasoning tokens are already part of `output`. `cached_input` above `input` is
    /// clamped to `input` (a malformed report must not make uncached input negative).
    /// `None` if the model is unknown, the tier unpriced, or the result overflows.
    pub fn cost(&self, model: &str, tier: Tier, usage: &Usage) -> Option<Decimal> {
        let rates = self.rates(model, tier)?;
        let cached = usage.cached_input.min(usage.input);
        let uncached = usage.input - cached;
        let total = Decimal::from(uncached)
            .checked_mul(rates.input)?
            .checked_add(Decimal::from(cached).checked_mul(rates.cached_input)?)?
            .checked_add(Decimal::from(usage.output).checked_mul(rates.output)?)?;
        Some(total.normalize())
    }

    /// What the same usage would have cost on Standard minus what it cost on `tier`:
    /// zero for Standard, positive for Flex and Batch, **negative** for Priority (the
    /// premium paid; the sign is kept so sums stay honest). `None` when either cost is.
    pub fn savings(&self, model: &str, tier: Tier, usage: &Usage) -> Option<Decimal> {
        let standard = self.cost(model, Tier::Standard, usage)?;
        let actual = self.cost(model, tier, usage)?;
        Some(standard.checked_sub(actual)?.normalize())
    }

    /// Catalog names in sorted order: the closed set of `model` metric labels.
    pub fn models(&self) -> impl Iterator<Item = &str> {
        self.inner.models.keys().map(String::as_str)
    }

    /// The date the prices were taken (`YYYY-MM-DD`).
    pub fn prices_as_of(&self) -> &str {
        &self.inner.prices_as_of
    }

    fn entry(&self, model: &str) -> Option<&ModelPrices> {
        self.inner.models.get(self.resolve(model)?)
    }
}

/// `name-YYYY-MM-DD` → `name` (digits checked, not the calendar).
fn strip_snapshot_date(model: &str) -> Option<&str> {
    const SUFFIX: &[u8; 11] = b"-dddd-dd-dd";
    let split = model.len().checked_sub(SUFFIX.len()).filter(|&at| at > 0)?;
    let suffix = model.as_bytes().get(split..)?;
    let shape_ok =
        suffix.iter().zip(SUFFIX).all(|(&b, &pattern)| if pattern == b'd' { b.is_ascii_digit() } else { b == pattern });
    if shape_ok { model.get(..split) } else { None }
}
