//! Model catalog and cost: which models exist, which are flex-capable, and what a
//! request's [`Usage`] cost on the tier the response reports, on the day it was served.
//! Pure `Decimal` arithmetic (never `f64`), overflow-checked, and never fails a request:
//! an unknown model, an unpriced tier or a day before a model's first price gives `None`
//! for the caller to count.
//!
//! A model's prices are a list of entries, each in force from its `effective_from` day
//! (UTC) until the next entry's; an entry may price prompts above a size at multiples of
//! its rates (long context), and cache writes at their own rate. The default table is
//! `config/pricing.toml`, embedded at build time; a user file replaces it whole
//! ([`PriceTable::from_toml`]).

mod day;
mod load;
#[cfg(test)]
mod tests;

pub use day::Day;

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
    /// Uncached input: neither read from nor written to the prompt cache.
    pub input: Decimal,
    /// Input read from the prompt cache. Equals `input` when the file gives no price.
    pub cached_input: Decimal,
    /// Input written to the prompt cache. Equals `input` when the file gives no price
    /// (models before GPT-5.6 charge no cache-write fee).
    pub cache_write: Decimal,
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

/// One model's price entries, sorted by `from`, no two on the same day.
#[derive(Debug)]
struct ModelPrices {
    entries: Vec<Entry>,
}

/// The prices in force from one day on.
#[derive(Debug)]
struct Entry {
    /// [`Day::EARLIEST`] for an entry without `effective_from`.
    from: Day,
    flex_capable: bool,
    /// Indexed by [`Tier::index`]; `None`: the model is not sold on that tier.
    tiers: [Option<Rates>; 4],
    long_context: Option<LongContext>,
}

/// Rates for prompts of more than `above` input tokens, multiplied out at load so that
/// pricing a request only picks a row.
#[derive(Debug)]
struct LongContext {
    above: u64,
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
        self.lookup(model).map(|(name, _)| name)
    }

    /// May this model be sent to the flex tier today? `false` for unknown models.
    pub fn is_flex_capable(&self, model: &str) -> bool {
        self.entry_on(model, Day::today()).is_some_and(|e| e.flex_capable)
    }

    /// Is the model sold on `tier` by any of its entries? (Which series to prime.)
    pub fn offers(&self, model: &str, tier: Tier) -> bool {
        self.lookup(model).is_some_and(|(_, m)| m.entries.iter().any(|e| e.tiers[tier.index()].is_some()))
    }

    /// Today's per-token rates of `model` on `tier` for a prompt within the long-context
    /// threshold; `None` if unknown or not sold on that tier.
    pub fn rates(&self, model: &str, tier: Tier) -> Option<&Rates> {
        self.rates_on(model, tier, Day::today(), 0)
    }

    /// The rates that price a prompt of `input_tokens` on `tier` on `day`: those of the
    /// entry in force that day, its long-context row when the prompt is above its
    /// threshold.
    pub fn rates_on(&self, model: &str, tier: Tier, day: Day, input_tokens: u64) -> Option<&Rates> {
        let entry = self.entry_on(model, day)?;
        match &entry.long_context {
            Some(long) if input_tokens > long.above => long.tiers[tier.index()].as_ref(),
            _ => entry.tiers[tier.index()].as_ref(),
        }
    }

    /// [`PriceTable::cost_on`] today.
    pub fn cost(&self, model: &str, tier: Tier, usage: &Usage) -> Option<Decimal> {
        self.cost_on(model, tier, usage, Day::today())
    }

    /// USD cost on `day`, at the rates [`PriceTable::rates_on`] picks for the usage's
    /// input size: `uncached × input + cached × cached_input + written × cache_write +
    /// output × output`, where `uncached = input − cached − written` (`OpenAI` counts cache
    /// reads and cache writes inside the input tokens). Reasoning tokens are already part
    /// of `output`. A malformed report is clamped, never negative: `cached` to `input`,
    /// then `written` to what is left. `None` if the model is unknown or has no entry in
    /// force that day, the tier is unpriced, or the result overflows.
    pub fn cost_on(&self, model: &str, tier: Tier, usage: &Usage, day: Day) -> Option<Decimal> {
        let rates = self.rates_on(model, tier, day, usage.input)?;
        let cached = usage.cached_input.min(usage.input);
        let written = usage.cache_write.min(usage.input - cached);
        let uncached = usage.input - cached - written;
        let part = |tokens: u64, rate: Decimal| Decimal::from(tokens).checked_mul(rate);
        let total = part(uncached, rates.input)?
            .checked_add(part(cached, rates.cached_input)?)?
            .checked_add(part(written, rates.cache_write)?)?
            .checked_add(part(usage.output, rates.output)?)?;
        Some(total.normalize())
    }

    /// [`PriceTable::savings_on`] today.
    pub fn savings(&self, model: &str, tier: Tier, usage: &Usage) -> Option<Decimal> {
        self.savings_on(model, tier, usage, Day::today())
    }

    /// What the same usage would have cost on Standard minus what it cost on `tier`, both
    /// on `day`: zero for Standard, positive for Flex and Batch, **negative** for Priority
    /// (the premium paid; the sign is kept so sums stay honest). `None` when either cost is.
    pub fn savings_on(&self, model: &str, tier: Tier, usage: &Usage, day: Day) -> Option<Decimal> {
        let standard = self.cost_on(model, Tier::Standard, usage, day)?;
        let actual = self.cost_on(model, tier, usage, day)?;
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

    /// The catalog entry for `model` (exact, else without a snapshot date): one map
    /// lookup for a plain name, no allocation.
    fn lookup<'a>(&'a self, model: &str) -> Option<(&'a str, &'a ModelPrices)> {
        let models = &self.inner.models;
        let found = models.get_key_value(model).or_else(|| models.get_key_value(strip_snapshot_date(model)?));
        found.map(|(name, prices)| (name.as_str(), prices))
    }

    /// The entry in force on `day`: the last one starting on or before it (a binary
    /// search over a handful of entries).
    fn entry_on(&self, model: &str, day: Day) -> Option<&Entry> {
        let entries = &self.lookup(model)?.1.entries;
        let in_force = entries.partition_point(|e| e.from <= day);
        entries.get(in_force.checked_sub(1)?)
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
