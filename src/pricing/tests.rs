//! Tests for the price table: the embedded catalog, exact decimal costs per tier,
//! snapshot names, savings signs, and that loading reports every problem at once. The
//! dated, long-context and cache-write dimensions are in `tests/dimensions.rs`.

use super::{PriceTable, Tier};
use crate::usage::Usage;
use rust_decimal::Decimal;

mod dimensions;
mod load;
mod prop;

fn dec(text: &str) -> Decimal {
    Decimal::from_str_exact(text).unwrap()
}

const fn usage(input: u64, cached_input: u64, output: u64, reasoning: u64) -> Usage {
    Usage { input, cached_input, cache_write: 0, output, reasoning }
}

/// 1M input tokens of which 400K cached, 500K output of which 300K reasoning.
const MIXED: Usage = usage(1_000_000, 400_000, 500_000, 300_000);

const REQUIRED_MODELS: [&str; 22] = [
    "gpt-5",
    "gpt-5-mini",
    "gpt-5-nano",
    "gpt-5.1",
    "gpt-5.2",
    "gpt-5.4",
    "gpt-5.4-mini",
    "gpt-5.4-nano",
    "gpt-5.5",
    "gpt-5.6-sol",
    "gpt-5.6-terra",
    "gpt-5.6-luna",
    "gpt-6-astra",
    "o3",
    "o4-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "gpt-4o",
    "gpt-4o-mini",
    "text-embedding-3-small",
    "text-embedding-3-large",
];

#[test]
fn embedded_table_loads_and_covers_the_catalog() {
    let table = PriceTable::from_toml(super::EMBEDDED_TOML).unwrap();
    assert_eq!(table.prices_as_of(), "2026-11-01");
    let models: Vec<&str> = table.models().collect();
    for name in REQUIRED_MODELS.iter().chain(&["text-embedding-ada-002"]) {
        assert!(models.contains(name), "missing {name}");
        assert!(table.rates(name, Tier::Standard).is_some(), "{name} standard");
    }
    assert_eq!(models.len(), 23);
    assert!(models.windows(2).all(|w| w[0] < w[1]), "sorted, for stable labels");
    // Flex-capable = the pricing page's Flex tab (minus the two unpriced -pro models).
    let flex: Vec<&str> = models.iter().copied().filter(|m| table.is_flex_capable(m)).collect();
    let mut want = vec![
        "gpt-6-astra",
        "gpt-5.6-sol",
        "gpt-5.6-terra",
        "gpt-5.6-luna",
        "gpt-5.5",
        "gpt-5.4",
        "gpt-5.4-mini",
        "gpt-5.4-nano",
        "gpt-5.2",
        "gpt-5.1",
        "gpt-5",
        "gpt-5-mini",
        "gpt-5-nano",
        "o3",
        "o4-mini",
    ];
    want.sort_unstable();
    assert_eq!(flex, want);
    assert_eq!(PriceTable::embedded().models().count(), 23);
}

/// `(model, tier, usage, expected cost)`; `None`: not priced.
const COSTS: &[(&str, Tier, Usage, Option<&str>)] = &[
    // 600K × 1.25 + 400K × 0.125 + 500K × 10 (per 1M) = 0.75 + 0.05 + 5
    ("gpt-5", Tier::Standard, MIXED, Some("5.8")),
    ("gpt-5", Tier::Flex, MIXED, Some("2.9")),
    ("gpt-5", Tier::Priority, MIXED, Some("11.6")),
    ("gpt-5", Tier::Batch, MIXED, Some("2.9")),
    ("gpt-5-mini", Tier::Priority, MIXED, Some("2.088")),
    ("gpt-5-nano", Tier::Priority, MIXED, None),
    // MIXED's 1M input tokens are long context on gpt-5.5 and gpt-5.4 (over 272K):
    // 600K × 25 + 400K × 2.50 + 500K × 112.50 (priority ×2 in, ×1.5 out), per 1M.
    ("gpt-5.5", Tier::Priority, MIXED, Some("72.25")),
    ("gpt-5.5", Tier::Batch, MIXED, None),
    ("gpt-5.4", Tier::Flex, MIXED, Some("7.229")),
    // Batch has no cached price for o3: cached tokens bill at Batch input (1.00).
    ("o3", Tier::Batch, MIXED, Some("3")),
    ("o3", Tier::Flex, MIXED, Some("2.7")),
    ("o4-mini", Tier::Flex, MIXED, Some("1.4852")),
    ("gpt-4o", Tier::Priority, MIXED, Some("11.9")),
    ("gpt-4o-mini", Tier::Batch, MIXED, Some("0.225")),
    ("gpt-4.1", Tier::Flex, MIXED, None),
    ("text-embedding-3-large", Tier::Batch, usage(2_000_000, 0, 0, 0), Some("0.13")),
    ("gpt-6-astra", Tier::Standard, usage(1, 0, 0, 0), Some("0.00001")),
    ("gpt-5", Tier::Standard, usage(1, 1, 1, 1), Some("0.000010125")),
    ("gpt-5", Tier::Standard, usage(0, 0, 0, 0), Some("0")),
    // Snapshot names resolve to their base model.
    ("gpt-5-2025-08-07", Tier::Flex, MIXED, Some("2.9")),
    ("gpt-4o-mini-2024-07-18", Tier::Batch, MIXED, Some("0.225")),
    ("unknown-model", Tier::Standard, MIXED, None),
];

#[test]
fn costs_are_exact() {
    let table = PriceTable::embedded();
    for &(model, tier, usage, want) in COSTS {
        assert_eq!(table.cost(model, tier, &usage), want.map(dec), "{model} {tier:?}");
    }
}

#[test]
fn reasoning_is_inside_output_and_cached_is_clamped() {
    let table = PriceTable::embedded();
    let plain = table.cost("gpt-5", Tier::Standard, &usage(1000, 0, 500, 0));
    assert_eq!(table.cost("gpt-5", Tier::Standard, &usage(1000, 0, 500, 499)), plain);
    // cached > input: all input counts as cached, nothing goes negative.
    let all_cached = table.cost("gpt-5", Tier::Standard, &usage(1000, 1000, 0, 0));
    assert_eq!(all_cached, Some(dec("0.000125")));
    assert_eq!(table.cost("gpt-5", Tier::Standard, &usage(1000, 5000, 0, 0)), all_cached);
}

#[test]
fn rates_are_per_token() {
    let table = PriceTable::embedded();
    let rates = table.rates("gpt-5", Tier::Flex).unwrap();
    assert_eq!(
        (rates.input, rates.cached_input, rates.output),
        (dec("0.000000625"), dec("0.0000000625"), dec("0.000005"))
    );
    let batch = table.rates("o4-mini", Tier::Batch).unwrap();
    assert_eq!(batch.cached_input, batch.input, "absent cached price falls back to input");
    assert!(table.rates("gpt-4o", Tier::Flex).is_none());
}

#[test]
fn savings_keep_their_sign() {
    let table = PriceTable::embedded();
    assert_eq!(table.savings("gpt-5", Tier::Standard, &MIXED), Some(Decimal::ZERO));
    assert_eq!(table.savings("gpt-5", Tier::Flex, &MIXED), Some(dec("2.9")));
    assert_eq!(table.savings("gpt-5-2025-08-07", Tier::Batch, &MIXED), Some(dec("2.9")));
    assert_eq!(table.savings("gpt-5", Tier::Priority, &MIXED), Some(dec("-5.8")));
    assert_eq!(table.savings("gpt-4.1", Tier::Flex, &MIXED), None);
    assert_eq!(table.savings("nope", Tier::Standard, &MIXED), None);
}

#[test]
fn resolve_strips_only_a_dated_suffix() {
    let table = PriceTable::embedded();
    let cases = [
        ("gpt-5", Some("gpt-5")),
        ("gpt-5-mini", Some("gpt-5-mini")),
        ("gpt-5-2025-08-07", Some("gpt-5")),
        ("gpt-5-mini-2025-08-07", Some("gpt-5-mini")),
        ("gpt-4o-mini-2024-07-18", Some("gpt-4o-mini")),
        ("o3-2025-04-16", Some("o3")),
        ("gpt-5.1-2025-11-13", Some("gpt-5.1")),
        ("gpt-5-20250807", None),
        ("gpt-5-2025-08", None),
        ("gpt-5-2025-08-07-extra", None),
        ("gpt-5-2025-08-07-2025-08-07", None),
        ("gpt-5-mini-nonsense", None),
        ("-2025-08-07", None),
        ("GPT-5", None),
        ("ft:gpt-4o-mini:acme::abc123", None),
        ("gpt-5é-2025-08-07", None),
        ("", None),
    ];
    for (model, want) in cases {
        assert_eq!(table.resolve(model), want, "{model}");
        assert_eq!(table.is_flex_capable(model), want.is_some_and(|m| m != "gpt-4o-mini"), "{model}");
    }
}
