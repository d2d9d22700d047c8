//! Tests for loading price tables: accepted spellings of prices and dates, and rejection
//! of every kind of bad input with all problems listed at once, each naming its key.

use super::dec;
use crate::pricing::{Day, PriceTable};
use crate::tier::Tier;

fn problems(text: &str) -> Vec<String> {
    PriceTable::from_toml(text).unwrap_err().0
}

#[test]
fn accepts_strings_numbers_and_dates() {
    let table = PriceTable::from_toml(
        r#"
        prices_as_of = 2024-02-29
        [models.tiny]
        standard = { input = 0.1, cached_input = 1, output = " 2.50 " }
        flex = { input = "0.05", output = 1e-1 }
        [models."gpt-x.1"]
        standard = { input = "3", output = "0" }
        flex = { input = "1", output = "0" }
        flex_capable = false
        "#,
    )
    .unwrap();
    assert_eq!(table.prices_as_of(), "2024-02-29");
    let std = table.rates("tiny", Tier::Standard).unwrap();
    assert_eq!((std.input, std.cached_input, std.output), (dec("0.0000001"), dec("0.000001"), dec("0.0000025")));
    assert_eq!(table.rates("tiny", Tier::Flex).unwrap().output, dec("0.0000001"));
    assert!(table.is_flex_capable("tiny"), "a flex table makes a model flex-capable");
    assert!(!table.is_flex_capable("gpt-x.1"), "unless it opts out");
    assert_eq!(table.resolve("gpt-x.1-2030-01-01"), Some("gpt-x.1"));
    assert_eq!(table.models().collect::<Vec<_>>(), ["gpt-x.1", "tiny"]);
}

#[test]
fn reports_every_problem_with_its_key() {
    let got = problems(
        r#"
        prices_as_of = "2026-02-30"
        currency = "EUR"
        [models."gpt-5"]
        standard = { input = "1.25", output = "10.00" }
        flex = { input = "-0.625", cached_input = "abc", output = true, extra = "1" }
        priority = "2.50"
        [models.m2]
        flex_capable = true
        batch = { cached_input = "0.1" }
        turbo = { input = "1", output = "1" }
        [models.m3]
        standard = { input = "1", output = "1" }
        flex_capable = "yes"
        [models.m4]
        "#,
    );
    let want = [
        "`currency`: unknown key",
        "`prices_as_of`: must be a date",
        "`models.\"gpt-5\".flex.extra`: unknown key",
        "`models.\"gpt-5\".flex.input`: must not be negative",
        "`models.\"gpt-5\".flex.cached_input`: must be a decimal number",
        "`models.\"gpt-5\".flex.output`: must be a decimal number",
        "`models.\"gpt-5\".priority`: must be a table",
        "`models.\"m2\".batch.input`: missing",
        "`models.\"m2\".batch.output`: missing",
        "`models.\"m2\".flex_capable`: is true but `models.\"m2\".flex` gives no flex prices",
        "`models.\"m2\".standard`: missing",
        "`models.\"m2\".turbo`: unknown key",
        "`models.\"m3\".flex_capable`: must be true or false",
        "`models.\"m4\".standard`: missing",
    ];
    for prefix in want {
        assert!(got.iter().any(|p| p.starts_with(prefix)), "no {prefix:?} in {got:#?}");
    }
    assert_eq!(got.len(), want.len(), "{got:#?}");
    let shown = PriceTable::from_toml("prices_as_of = 1").unwrap_err().to_string();
    assert!(shown.starts_with("invalid price table: `prices_as_of`: must be a date"), "{shown}");
}

#[test]
fn rejects_bad_documents() {
    let cases: [(&str, &str); 9] = [
        ("", "`prices_as_of`: missing"),
        ("prices_as_of = \"2026-01-01\"", "`models`: missing"),
        ("prices_as_of = \"2026-01-01\"\nmodels = 3", "`models`: must be a table"),
        ("prices_as_of = \"2026-01-01\"\n[models]", "`models`: must define at least one model"),
        ("prices_as_of = \"2026-01-01\"\nmodels = { x = 1 }", "`models.\"x\"`: must be a table of tiers"),
        ("prices_as_of = \"2026-1-01\"\nmodels = { }", "`prices_as_of`: must be a date"),
        ("prices_as_of = 2026-01-01T10:00:00\nmodels = { }", "`prices_as_of`: must be a date"),
        ("prices_as_of = \"2026-01-01\"\n\"odd key\" = 1", "`\"odd key\"`: unknown key"),
        ("prices_as_of = [", "invalid TOML"),
    ];
    for (text, prefix) in cases {
        let got = problems(text);
        assert!(got.iter().any(|p| p.starts_with(prefix)), "{text:?}: no {prefix:?} in {got:#?}");
    }
    for bad in ["1e400", "\"NaN\"", "\"1e3\"", "\"79228162514264337593543950336\"", "\"\""] {
        let text = format!("prices_as_of = \"2026-01-01\"\n[models.m]\nstandard = {{ input = {bad}, output = 1 }}");
        assert_eq!(problems(&text).len(), 1, "{bad}");
    }
    for day in ["2026-02-29", "2026-04-31", "2026-13-01", "2026-00-10", "1900-02-29"] {
        let text = format!("prices_as_of = \"{day}\"\nmodels = {{ m = {{ standard = {{ input = 1, output = 1 }} }} }}");
        assert_eq!(problems(&text), ["`prices_as_of`: must be a date `YYYY-MM-DD`"], "{day}");
    }
    let ok = "prices_as_of = \"2000-02-29\"\nmodels = { m = { standard = { input = 1, output = 1 } } }";
    assert!(PriceTable::from_toml(ok).is_ok());
}

#[test]
fn accepts_dated_entries_long_context_and_cache_writes() {
    let table = PriceTable::from_toml(
        r#"
        prices_as_of = "2026-11-01"
        [[models.m]]
        effective_from = 2026-11-22
        standard = { input = "5", cached_input = "0.5", cache_write = 6.25, output = "30" }
        long_context = { above_input_tokens = 272000, input = 2, output = "1.5" }
        [[models.m]]
        standard = { input = "4", output = "20" }
        "#,
    )
    .unwrap();
    let list = table.rates_on("m", Tier::Standard, Day::parse("2026-11-22").unwrap(), 272_001).unwrap();
    assert_eq!(
        (list.input, list.cached_input, list.cache_write, list.output),
        (dec("0.00001"), dec("0.000001"), dec("0.0000125"), dec("0.000045"))
    );
    let promo = table.rates_on("m", Tier::Standard, Day::parse("2026-11-21").unwrap(), 272_001).unwrap();
    assert_eq!((promo.input, promo.cache_write, promo.output), (dec("0.000004"), dec("0.000004"), dec("0.00002")));
}

#[test]
fn reports_every_dated_and_long_context_problem_with_its_key() {
    let got = problems(
        r#"
        prices_as_of = "2026-11-01"
        [[models.a]]
        standard = { input = "1", output = "1", cache_write = "-1" }
        [[models.a]]
        standard = { input = "2", output = "1" }
        [[models.a]]
        effective_from = "2026-11-31"
        standard = { input = "2", output = "1" }
        [[models.b]]
        effective_from = "2027-01-01"
        standard = { input = "1", output = "1" }
        long_context = { above_input_tokens = 0, input = "0", output = "x", over = 1 }
        [[models.b]]
        effective_from = 2027-01-01
        standard = { input = "1", output = "1" }
        long_context = { input = "2" }
        [models.c]
        standard = { input = "1", output = "1" }
        long_context = "2x"
        effective_from = true
        [models.d]
        standard = { input = "79228162514264337593543950335", output = "1" }
        long_context = { above_input_tokens = 272000, input = "79228162514264337593543950335", output = "1" }
        "#,
    );
    let want = [
        "`models.\"a\"[0].standard.cache_write`: must not be negative",
        "`models.\"a\"[1].effective_from`: missing, as in `models.\"a\"[0]`",
        "`models.\"a\"[2].effective_from`: must be a date",
        "`models.\"b\"[0].long_context.over`: unknown key",
        "`models.\"b\"[0].long_context.above_input_tokens`: must be a whole number of tokens above zero",
        "`models.\"b\"[0].long_context.input`: must be above zero",
        "`models.\"b\"[0].long_context.output`: must be a decimal multiplier",
        "`models.\"b\"[1].long_context.above_input_tokens`: missing",
        "`models.\"b\"[1].long_context.output`: missing",
        "`models.\"b\"[1].effective_from`: the same date as `models.\"b\"[0]`",
        "`models.\"c\".effective_from`: must be a date",
        "`models.\"c\".long_context`: must be a table like",
        "`models.\"d\".long_context`: the multiplied prices are too large",
    ];
    for prefix in want {
        assert!(got.iter().any(|p| p.starts_with(prefix)), "no {prefix:?} in {got:#?}");
    }
    assert_eq!(got.len(), want.len(), "{got:#?}");
    let empty = problems("prices_as_of = \"2026-01-01\"\nmodels = { m = [] }");
    assert_eq!(empty, ["`models.\"m\"`: must list at least one price entry"]);
    let not_table = problems("prices_as_of = \"2026-01-01\"\nmodels = { m = [1] }");
    assert_eq!(not_table, ["`models.\"m\"[0]`: must be a table of tiers"]);
}
