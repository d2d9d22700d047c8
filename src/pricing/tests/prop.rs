//! Property tests for pricing: `cost` and `savings` never panic for any token counts and day,
//! and overflow yields `None` instead of a wrong number.

use crate::pricing::{Day, PriceTable};
use crate::tier::Tier;
use crate::usage::Usage;
use proptest::prelude::*;

fn any_usage() -> impl Strategy<Value = Usage> {
    (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>()).prop_map(
        |(input, cached_input, cache_write, output, reasoning)| Usage {
            input,
            cached_input,
            cache_write,
            output,
            reasoning,
        },
    )
}

proptest! {
    #[test]
    fn cost_never_panics(
        usage in any_usage(),
        tier in prop::sample::select(Tier::ALL.to_vec()),
        pick in any::<prop::sample::Index>(),
        (year, month, day) in (1900i64..2200, 1i64..=12, 1i64..=28),
    ) {
        let table = PriceTable::embedded();
        let models: Vec<&str> = table.models().collect();
        let model = models[pick.index(models.len())];
        let day = Day::from_ymd(year, month, day).unwrap();
        if let Some(cost) = table.cost_on(model, tier, &usage, day) {
            prop_assert!(cost >= rust_decimal::Decimal::ZERO);
        }
        let _ = table.savings_on(model, tier, &usage, day);
    }

    #[test]
    fn huge_rates_overflow_to_none(usage in any_usage()) {
        // The largest price a Decimal holds: multiplying it by big counts must overflow
        // into `None`, never panic.
        let table = PriceTable::from_toml(
            "prices_as_of = \"2026-01-01\"\n[models.m]\nstandard = { input = \"79228162514264337593543950335\", output = \"79228162514264337593543950335\" }",
        ).unwrap();
        let _ = table.cost("m", Tier::Standard, &usage);
        let _ = table.savings("m", Tier::Standard, &usage);
    }
}

#[test]
fn overflow_gives_none() {
    let table = PriceTable::from_toml(
        "prices_as_of = \"2026-01-01\"\n[models.m]\nstandard = { input = \"79228162514264337593543950335\", output = \"1\" }",
    )
    .unwrap();
    let huge = Usage { input: u64::MAX, ..Usage::default() };
    assert_eq!(table.cost("m", Tier::Standard, &huge), None);
    let max = Usage {
        input: u64::MAX,
        cached_input: u64::MAX / 2,
        cache_write: u64::MAX,
        output: u64::MAX,
        reasoning: u64::MAX,
    };
    assert!(PriceTable::embedded().cost("gpt-6-astra", Tier::Priority, &max).is_some());
}
