//! Loading a price table from TOML: walks the parsed document by hand (instead of serde
//! with `deny_unknown_fields`, which stops at the first error) so that every problem,
//! unknown keys included, is reported at once with the key it concerns.
//!
//! A model is one table of prices (`[models."NAME"]`) or a list of dated ones
//! (`[[models."NAME"]]`, each with its `effective_from`); both end up as a sorted list of
//! entries.

use super::{Catalog, Day, Entry, LongContext, ModelPrices, PricingErrors, Rates, Tier};
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use toml::{Table, Value};

const ENTRY_KEYS: &str = "`effective_from`, `standard`, `flex`, `priority`, `batch`, `flex_capable` or `long_context`";

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
        Some(value) => date(value).map_or_else(
            || {
                problems.push("`prices_as_of`: must be a date `YYYY-MM-DD`".into());
                String::new()
            },
            |(text, _)| text,
        ),
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
    if name.is_empty() {
        problems.push(format!("`{key}`: the model name must not be empty"));
    }
    let before = problems.len();
    // Each entry's start and key, kept even when the entry has other problems, so that
    // clashing dates are reported alongside them.
    let mut starts: Vec<(Day, String)> = Vec::new();
    let mut entries = Vec::new();
    match value {
        Value::Table(table) => entries.extend(entry(&key, table, problems, &mut starts)),
        Value::Array(items) if items.is_empty() => {
            problems.push(format!("`{key}`: must list at least one price entry"));
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let key = format!("{key}[{i}]");
                match item {
                    Value::Table(table) => entries.extend(entry(&key, table, problems, &mut starts)),
                    _ => problems.push(format!("`{key}`: must be a table of tiers")),
                }
            }
        }
        _ => problems.push(format!("`{key}`: must be a table of tiers, or dated tables `[[{key}]]`")),
    }
    starts.sort();
    for pair in starts.windows(2) {
        let [(day, first), (next, second)] = pair else { continue };
        if day == next && *day == Day::EARLIEST {
            problems.push(format!(
                "`{second}.effective_from`: missing, as in `{first}` (only one entry may go without; it is in force until the first dated one)"
            ));
        } else if day == next {
            problems.push(format!("`{second}.effective_from`: the same date as `{first}` (one entry per date)"));
        }
    }
    entries.sort_by_key(|e| e.from);
    (problems.len() == before).then_some(ModelPrices { entries })
}

fn entry(key: &str, table: &Table, problems: &mut Vec<String>, starts: &mut Vec<(Day, String)>) -> Option<Entry> {
    let before = problems.len();
    let from = match table.get("effective_from") {
        None => Some(Day::EARLIEST),
        Some(value) => date(value).map(|(_, day)| day).or_else(|| {
            problems.push(format!("`{key}.effective_from`: must be a date `YYYY-MM-DD` (UTC)"));
            None
        }),
    };
    if let Some(day) = from {
        starts.push((day, key.to_owned()));
    }
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
    let long_context =
        table.get("long_context").and_then(|v| long_context(&format!("{key}.long_context"), v, &tiers, problems));
    let known = |k: &str| {
        matches!(k, "effective_from" | "flex_capable" | "long_context") || Tier::ALL.iter().any(|t| t.as_str() == k)
    };
    for unknown in table.keys().filter(|k| !known(k)) {
        problems.push(format!("`{key}.{}`: unknown key (expected {ENTRY_KEYS})", quote(unknown)));
    }
    (problems.len() == before).then_some(Entry { from: from?, flex_capable, tiers, long_context })
}

/// `{ above_input_tokens = N, input = "2", output = "1.5" }`: prompts of more than N
/// input tokens pay `input` times every input-side rate (uncached, cached, cache write)
/// and `output` times the output rate, on every tier the entry prices.
fn long_context(
    key: &str,
    value: &Value,
    tiers: &[Option<Rates>; 4],
    problems: &mut Vec<String>,
) -> Option<LongContext> {
    let Value::Table(table) = value else {
        problems.push(format!(
            "`{key}`: must be a table like {{ above_input_tokens = 272000, input = \"2\", output = \"1.5\" }}"
        ));
        return None;
    };
    for unknown in table.keys().filter(|k| !matches!(k.as_str(), "above_input_tokens" | "input" | "output")) {
        problems.push(format!(
            "`{key}.{}`: unknown key (expected `above_input_tokens`, `input` or `output`)",
            quote(unknown)
        ));
    }
    let above = match table.get("above_input_tokens") {
        None => {
            problems.push(format!(
                "`{key}.above_input_tokens`: missing (the prompt size, in input tokens, above which these prices apply)"
            ));
            None
        }
        Some(Value::Integer(n)) if *n > 0 => u64::try_from(*n).ok(),
        Some(_) => {
            problems.push(format!("`{key}.above_input_tokens`: must be a whole number of tokens above zero"));
            None
        }
    };
    let mut factor = |name: &str| match table.get(name) {
        None => {
            problems.push(format!("`{key}.{name}`: missing (the multiplier of the {name} prices)"));
            None
        }
        Some(value) => match decimal(value) {
            Some(f) if f > Decimal::ZERO => Some(f),
            Some(_) => {
                problems.push(format!("`{key}.{name}`: must be above zero"));
                None
            }
            None => {
                problems.push(format!("`{key}.{name}`: must be a decimal multiplier, e.g. \"1.5\""));
                None
            }
        },
    };
    let (input, output) = (factor("input"), factor("output"));
    let (above, input, output) = (above?, input?, output?);
    let scale = |r: &Rates| {
        Some(Rates {
            input: r.input.checked_mul(input)?,
            cached_input: r.cached_input.checked_mul(input)?,
            cache_write: r.cache_write.checked_mul(input)?,
            output: r.output.checked_mul(output)?,
        })
    };
    let mut long = [None; 4];
    for (slot, rates) in long.iter_mut().zip(tiers) {
        if let Some(rates) = rates {
            let Some(scaled) = scale(rates) else {
                problems.push(format!("`{key}`: the multiplied prices are too large"));
                return None;
            };
            *slot = Some(scaled);
        }
    }
    Some(LongContext { above, tiers: long })
}

fn rates(key: &str, value: &Value, problems: &mut Vec<String>) -> Option<Rates> {
    let Value::Table(table) = value else {
        problems.push(format!(
            "`{key}`: must be a table like {{ input = \"1.25\", cached_input = \"0.125\", output = \"10.00\" }}"
        ));
        return None;
    };
    for unknown in table.keys().filter(|k| !matches!(k.as_str(), "input" | "cached_input" | "cache_write" | "output")) {
        problems.push(format!(
            "`{key}.{}`: unknown key (expected `input`, `cached_input`, `cache_write` or `output`)",
            quote(unknown)
        ));
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
    let cache_write = field("cache_write", false);
    let output = field("output", true);
    let input = input?;
    Some(Rates {
        input,
        cached_input: cached_input.unwrap_or(input),
        cache_write: cache_write.unwrap_or(input),
        output: output?,
    })
}

/// A price in USD per 1M tokens → USD per token.
fn per_token(value: &Value) -> Result<Decimal, &'static str> {
    const NOT_A_NUMBER: &str = "must be a decimal number of USD per 1M tokens, e.g. \"1.25\"";
    let per_million = decimal(value).ok_or(NOT_A_NUMBER)?;
    if per_million < Decimal::ZERO {
        return Err("must not be negative");
    }
    per_million.checked_div(Decimal::from(1_000_000)).ok_or(NOT_A_NUMBER)
}

/// An exact decimal from a string or a TOML number.
fn decimal(value: &Value) -> Option<Decimal> {
    match value {
        Value::String(text) => Decimal::from_str_exact(text.trim()).ok(),
        Value::Integer(n) => Some(Decimal::from(*n)),
        // Rust prints the shortest text that reads back as the same float, i.e. what the
        // user wrote (`0.1`, not 0.1000000000000000055…), so the decimal is exact.
        Value::Float(f) => Decimal::from_str_exact(&f.to_string()).ok(),
        _ => None,
    }
}

/// `YYYY-MM-DD` as a string or a TOML local date, checked against the calendar.
fn date(value: &Value) -> Option<(String, Day)> {
    let text = match value {
        Value::String(text) => text.clone(),
        Value::Datetime(dt) if dt.time.is_none() && dt.offset.is_none() => dt.to_string(),
        _ => return None,
    };
    let day = Day::parse(&text)?;
    Some((text, day))
}

/// A key as written in a TOML path: bare when it may be (`A-Z a-z 0-9 _ -`), else quoted.
fn quote(key: &str) -> String {
    let bare = !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare { key.to_owned() } else { format!("{key:?}") }
}
