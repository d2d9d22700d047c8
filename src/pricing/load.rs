//! Loading a price table from TOML: walks the parsed document by hand (instead of serde
//! with `deny_unknown_fields`, which stops at the first error) so that every problem,
//! unknown keys included, is reported at once with the key it concerns.

use super::{Catalog, ModelPrices, PricingErrors, Rates, Tier};
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use toml::{Table, Value};

const MODEL_KEYS: &str = "`standard`, `flex`, `priority`, `batch` or `flex_capable`";

pub(super) fn parse(text: &str) -> Result<Catalog, PricingErrors> {
    let doc: Table = text.parse().map_err(|err| PricingErrors(vec![format!("invalid TOML: {err}")]))?;
    let mut problems = Vec::new();
    for key in doc.keys().filter(|k| !matches!(k.as_str(), "prices_as_of" | "models")) {
        problems.push(format!("`{}`: unknown key (expected `prices_as_of` or `models`)", quote(key)));
    }
    let prices_as_of = match doc.get("prices_as_of") {
        None => {
            problems.push("`prices_as_of`: missing (the date the prices were taken)".into());
            String::new()
        }
        Some(value) => date(value).unwrap_or_else(|| {
            problems.push("`prices_as_of`: must be a date `YYYY-MM-DD`".into());
            String::new()
        }),
    };
    let mut models = BTreeMap::new();
    match doc.get("models") {
        None => problems.push("`models`: missing".into()),
        Some(Value::Table(table)) if table.is_empty() => {
            problems.push("`models`: must define at least one model".into());
        }
        Some(Value::Table(table)) => {
            for (name, value) in table {
                if let Some(prices) = model(name, value, &mut problems) {
                    models.insert(name.clone(), prices);
                }
            }
        }
        Some(_) => problems.push("`models`: must be a table".into()),
    }
    if problems.is_empty() { Ok(Catalog { prices_as_of, models }) } else { Err(PricingErrors(problems)) }
}

fn model(name: &str, value: &Value, problems: &mut Vec<String>) -> Option<ModelPrices> {
    // Model names are always quoted, so `gpt-5` reads like `gpt-5.1` (which must be).
    let key = format!("models.{name:?}");
    let Value::Table(table) = value else {
        problems.push(format!("`{key}`: must be a table of tiers"));
        return None;
    };
    if name.is_empty() {
        problems.push(format!("`{key}`: the model name must not be empty"));
    }
    let before = problems.len();
    let mut tiers = [None; 4];
    for tier in Tier::ALL {
        if let Some(value) = table.get(tier.as_str()) {
            tiers[tier.index()] = rates(&format!("{key}.{}", tier.as_str()), value, problems);
        }
    }
    let has_flex = table.contains_key(Tier::Flex.as_str());
    let flex_capable = match table.get("flex_capable") {
        None => has_flex,
        Some(Value::Boolean(true)) if !has_flex => {
            problems.push(format!("`{key}.flex_capable`: is true but `{key}.flex` gives no flex prices"));
            false
        }
        Some(Value::Boolean(flag)) => *flag,
        Some(_) => {
            problems.push(format!("`{key}.flex_capable`: must be true or false"));
            false
        }
    };
    if !table.contains_key(Tier::Standard.as_str()) {
        problems.push(format!(
            "`{key}.standard`: missing (every model needs standard prices; savings are measured against them)"
        ));
    }
    for unknown in
        table.keys().filter(|k| k.as_str() != "flex_capable" && !Tier::ALL.iter().any(|t| t.as_str() == k.as_str()))
    {
        problems.push(format!("`{key}.{}`: unknown key (expected {MODEL_KEYS})", quote(unknown)));
    }
    (problems.len() == before).then_some(ModelPrices { flex_capable, tiers })
}

fn rates(key: &str, value: &Value, problems: &mut Vec<String>) -> Option<Rates> {
    let Value::Table(table) = value else {
        problems.push(format!(
            "`{key}`: must be a table like {{ input = \"1.25\", cached_input = \"0.125\", output = \"10.00\" }}"
        ));
        return None;
    };
    for unknown in table.keys().filter(|k| !matches!(k.as_str(), "input" | "cached_input" | "output")) {
        problems
            .push(format!("`{key}.{}`: unknown key (expected `input`, `cached_input` or `output`)", quote(unknown)));
    }
    let mut field = |name: &str, required: bool| match table.get(name) {
        None => {
            if required {
                problems.push(format!("`{key}.{name}`: missing (USD per 1M tokens)"));
            }
            None
        }
        Some(value) => per_token(value).map_err(|why| problems.push(format!("`{key}.{name}`: {why}"))).ok(),
    };
    let input = field("input", true);
    let cached_input = field("cached_input", false);
    let output = field("output", true);
    let input = input?;
    Some(Rates { input, cached_input: cached_input.unwrap_or(input), output: output? })
}

/// A price in USD per 1M tokens → USD per token.
fn per_token(value: &Value) -> Result<Decimal, &'static str> {
    const NOT_A_NUMBER: &str = "must be a decimal number of USD per 1M tokens, e.g. \"1.25\"";
    let per_million = match value {
        Value::String(text) => Decimal::from_str_exact(text.trim()).map_err(|_| NOT_A_NUMBER)?,
        Value::Integer(n) => Decimal::from(*n),
        // Rust prints the shortest text that reads back as the same float, i.e. what the
        // user wrote (`0.1`, not 0.1000000000000000055…), so the decimal is exact.
        Value::Float(f) => Decimal::from_str_exact(&f.to_string()).map_err(|_| NOT_A_NUMBER)?,
        _ => return Err(NOT_A_NUMBER),
    };
    if per_million < Decimal::ZERO {
        return Err("must not be negative");
    }
    per_million.checked_div(Decimal::from(1_000_000)).ok_or(NOT_A_NUMBER)
}

/// `YYYY-MM-DD` as a string or a TOML local date, checked against the calendar.
fn date(value: &Value) -> Option<String> {
    let text = match value {
        Value::String(text) => text.clone(),
        Value::Datetime(dt) if dt.time.is_none() && dt.offset.is_none() => dt.to_string(),
        _ => return None,
    };
    let bytes = text.as_bytes();
    let shape_ok = bytes.len() == 10
        && bytes.iter().enumerate().all(|(i, b)| if i == 4 || i == 7 { *b == b'-' } else { b.is_ascii_digit() });
    if !shape_ok {
        return None;
    }
    let num = |range: std::ops::Range<usize>| text.get(range)?.parse::<u32>().ok();
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    (1..=days).contains(&day).then_some(text)
}

/// A key as written in a TOML path: bare when it may be (`A-Z a-z 0-9 _ -`), else quoted.
fn quote(key: &str) -> String {
    let bare = !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare { key.to_owned() } else { format!("{key:?}") }
}
