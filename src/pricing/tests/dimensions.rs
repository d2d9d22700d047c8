//! The bill's dated, long-context and cache-write dimensions, on the embedded table and
//! on small tables written for the case, to the exact decimal.

use super::{dec, usage};
use crate::pricing::{Day, PriceTable};
use crate::tier::Tier;
use crate::usage::Usage;

fn day(text: &str) -> Day {
    Day::parse(text).unwrap()
}

const fn written(input: u64, cached_input: u64, cache_write: u64, output: u64) -> Usage {
    Usage { input, cached_input, cache_write, output, reasoning: 0 }
}

const PROMO_LAST_DAY: &str = "2026-11-21";
const LIST_FIRST_DAY: &str = "2026-11-22";

/// `(model, tier, day, usage, expected USD)`, all on the embedded table.
const CASES: &[(&str, Tier, &str, Usage, &str)] = &[
    // gpt-5.6-sol: the promotion through 2026-11-21, the list price from the next day.
    ("gpt-5.6-sol", Tier::Standard, PROMO_LAST_DAY, usage(100_000, 0, 1_000_000, 0), "20.4"),
    ("gpt-5.6-sol", Tier::Standard, LIST_FIRST_DAY, usage(100_000, 0, 1_000_000, 0), "30.5"),
    ("gpt-5.6-sol", Tier::Flex, PROMO_LAST_DAY, usage(100_000, 0, 1_000_000, 0), "10.2"),
    ("gpt-5.6-sol", Tier::Flex, LIST_FIRST_DAY, usage(100_000, 0, 1_000_000, 0), "15.25"),
    ("gpt-5.6-sol", Tier::Priority, LIST_FIRST_DAY, usage(100_000, 0, 1_000_000, 0), "61"),
    ("gpt-5.6-sol-2026-07-01", Tier::Standard, "2020-01-01", usage(100_000, 0, 1_000_000, 0), "20.4"),
    ("gpt-5.6-sol", Tier::Standard, "2031-01-01", usage(100_000, 0, 1_000_000, 0), "30.5"),
    // Long context: strictly more than 272,000 input tokens (2x input side, 1.5x output).
    ("gpt-5.4", Tier::Standard, PROMO_LAST_DAY, usage(272_000, 0, 1000, 0), "0.695"),
    ("gpt-5.4", Tier::Standard, PROMO_LAST_DAY, usage(272_001, 0, 1000, 0), "1.382505"),
    // 200K × 2.50 + 100K × 0.26 + 10K × 11.25 (flex, doubled and ×1.5), per 1M.
    ("gpt-5.4", Tier::Flex, PROMO_LAST_DAY, usage(300_000, 100_000, 10_000, 0), "0.6385"),
    ("gpt-5.5", Tier::Priority, PROMO_LAST_DAY, usage(400_000, 0, 0, 0), "10"),
    ("gpt-5.6-luna", Tier::Standard, PROMO_LAST_DAY, usage(300_000, 0, 1000, 0), "0.1218"),
    // No long-context price: the short one applies at any size.
    ("gpt-5.4-mini", Tier::Standard, PROMO_LAST_DAY, usage(300_000, 0, 0, 0), "0.225"),
    ("gpt-6-astra", Tier::Standard, PROMO_LAST_DAY, usage(300_000, 0, 0, 0), "3"),
    // Cache writes are part of the input and billed once, at 1.25x input:
    // 200 uncached × 10 + 2,000 cached × 1 + 400 written × 12.50 + 40 out × 50.
    ("gpt-6-astra", Tier::Standard, PROMO_LAST_DAY, written(2600, 2000, 400, 40), "0.011"),
    ("gpt-6-astra", Tier::Flex, PROMO_LAST_DAY, written(2600, 2000, 400, 40), "0.0055"),
    ("gpt-5.6-sol", Tier::Standard, PROMO_LAST_DAY, written(2600, 2000, 400, 40), "0.0044"),
    ("gpt-5.6-sol", Tier::Standard, LIST_FIRST_DAY, written(2600, 2000, 400, 40), "0.0057"),
    // A model without a cache-write price bills written tokens as plain input.
    ("gpt-5", Tier::Standard, PROMO_LAST_DAY, written(2600, 2000, 400, 40), "0.0014"),
    ("gpt-5", Tier::Standard, PROMO_LAST_DAY, usage(2600, 2000, 40, 0), "0.0014"),
    // A malformed report is clamped: writes beyond what reads left over are not billed.
    ("gpt-6-astra", Tier::Standard, PROMO_LAST_DAY, written(2600, 2000, 5000, 40), "0.0115"),
    ("gpt-6-astra", Tier::Standard, PROMO_LAST_DAY, written(2600, 9000, 400, 0), "0.0026"),
    // All three at once: long context on the list price, with reads and writes.
    // 150K × 10 + 100K × 1 + 50K × 12.50 + 2K × 45, per 1M.
    ("gpt-5.6-sol", Tier::Standard, LIST_FIRST_DAY, written(300_000, 100_000, 50_000, 2000), "2.315"),
    ("gpt-5.6-sol", Tier::Standard, PROMO_LAST_DAY, written(300_000, 100_000, 50_000, 2000), "1.84"),
];

#[test]
fn embedded_dimensions_are_exact() {
    let table = PriceTable::embedded();
    for &(model, tier, on, usage, want) in CASES {
        assert_eq!(table.cost_on(model, tier, &usage, day(on)), Some(dec(want)), "{model} {tier:?} {on} {usage:?}");
    }
    let sol = usage(100_000, 0, 1_000_000, 0);
    let saved = |on| table.savings_on("gpt-5.6-sol", Tier::Flex, &sol, day(on));
    assert_eq!((saved(PROMO_LAST_DAY), saved(LIST_FIRST_DAY)), (Some(dec("10.2")), Some(dec("15.25"))));
}

#[test]
fn rates_are_picked_by_day_and_prompt_size() {
    let table = PriceTable::embedded();
    let rates = |on, input| table.rates_on("gpt-5.6-sol", Tier::Standard, day(on), input).copied().unwrap();
    let promo = rates(PROMO_LAST_DAY, 272_000);
    assert_eq!(
        (promo.input, promo.cached_input, promo.cache_write, promo.output),
        (dec("0.000004"), dec("0.0000004"), dec("0.000005"), dec("0.00002"))
    );
    let list_long = rates(LIST_FIRST_DAY, 272_001);
    assert_eq!(
        (list_long.input, list_long.cached_input, list_long.cache_write, list_long.output),
        (dec("0.00001"), dec("0.000001"), dec("0.0000125"), dec("0.000045"))
    );
    // No cache-write price: writes cost what input costs.
    let gpt5 = table.rates("gpt-5", Tier::Standard).unwrap();
    assert_eq!(gpt5.cache_write, gpt5.input);
}

const DATED: &str = r#"
    prices_as_of = "2026-01-01"
    [[models.m]]
    effective_from = "2030-06-15"
    standard = { input = "3", output = "0" }
    [[models.m]]
    standard = { input = "1", output = "0" }
    flex = { input = "0.5", output = "0" }
    [[models.m]]
    effective_from = 2020-01-01
    standard = { input = "2", output = "0" }
    flex = { input = "1", output = "0" }
    flex_capable = false
    [models.late]
    effective_from = "2999-01-01"
    standard = { input = "1", output = "1" }
"#;

#[test]
fn the_entry_in_force_is_the_last_one_started() {
    let table = PriceTable::from_toml(DATED).unwrap();
    let million = usage(1_000_000, 0, 0, 0);
    let cost = |model, on| table.cost_on(model, Tier::Standard, &million, day(on));
    assert_eq!(cost("m", "2019-12-31"), Some(dec("1")), "the undated entry holds until the first dated one");
    assert_eq!(cost("m", "2020-01-01"), Some(dec("2")));
    assert_eq!(cost("m", "2030-06-14"), Some(dec("2")));
    assert_eq!(cost("m", "2030-06-15"), Some(dec("3")));
    assert_eq!(cost("late", "2998-12-31"), None, "no price before a model's first entry");
    assert_eq!(cost("late", "2999-01-01"), Some(dec("1")));
    assert_eq!(table.cost("late", Tier::Standard, &million), None);
    // Today (after 2020, before 2030) the entry that opts out of flex is in force; the
    // tiers any entry sells are still primed.
    assert!(!table.is_flex_capable("m"));
    assert!(table.offers("m", Tier::Flex) && !table.offers("late", Tier::Flex));
    assert_eq!(table.cost_on("m", Tier::Flex, &million, day("2030-06-15")), None, "the last entry has no flex");
}
