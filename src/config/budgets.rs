//! `[budgets.CLIENT]`: a spending limit per client of managed auth, as written and its
//! validation into [`crate::budgets::BudgetLimits`]. Every problem is reported with its key.

use std::collections::BTreeMap;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::Deserialize;

use super::{AuthConfig, GatewayKey};
use crate::budgets::{BudgetLimits, FailMode, OnSoft, Period, nanos};

/// What a request holds while in flight when its cost cannot be estimated and the table
/// does not say.
const DEFAULT_RESERVE_USD: &str = "0.05";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawBudget {
    /// The limit in USD per period (a string such as `"250"` or a TOML number).
    pub usd: Option<toml::Value>,
    /// `day`, `week`, `month` (UTC) or a duration such as `12h`.
    pub period: Option<String>,
    /// Past this, the soft-limit metric and (with `on_soft`) flex only.
    pub soft_usd: Option<toml::Value>,
    /// `none` (default) or `flex_only`.
    pub on_soft: Option<String>,
    /// `open` (default) or `closed`: served or refused while the shared count is unknown.
    pub fail: Option<String>,
    /// What a request in flight holds against the limit until it is settled when its
    /// cost cannot be estimated (a model the price table does not know, an unmetered
    /// endpoint).
    pub reserve_usd: Option<toml::Value>,
}

/// A money amount as written: a string or a TOML number, in USD, not negative.
fn money(add: &mut dyn FnMut(&str, String), key: &str, value: &toml::Value) -> Option<u64> {
    let text = match value {
        toml::Value::String(s) => s.trim().to_owned(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        _ => {
            add(key, "must be an amount in USD such as `\"250\"` or `12.5`".into());
            return None;
        }
    };
    let amount = Decimal::from_str(&text).ok().and_then(nanos);
    if amount.is_none() {
        add(key, format!("`{text}` is not an amount in USD of at least 0"));
    }
    amount
}

/// Validate every `[budgets.CLIENT]` table against the gateway keys.
pub fn validate(
    raw: &BTreeMap<String, RawBudget>,
    auth: &AuthConfig,
    add: &mut dyn FnMut(&str, String),
) -> Vec<BudgetLimits> {
    let keys: &[GatewayKey] = match auth {
        AuthConfig::Managed { keys } => keys,
        AuthConfig::Passthrough => &[],
    };
    let mut out = Vec::new();
    for (client, b) in raw {
        let key = format!("budgets.{client}");
        if matches!(auth, AuthConfig::Passthrough) {
            add(&key, "budgets need clients: set `auth.mode = \"managed\"` and name them in `auth.keys`".into());
        } else if !keys.iter().any(|k| &k.client == client) {
            add(&key, format!("no gateway key in `auth.keys` names client `{client}`"));
        }
        if b.usd.is_none() {
            add(&format!("{key}.usd"), "is required: the limit in USD per period".into());
        }
        let limit = b.usd.as_ref().and_then(|v| money(add, &format!("{key}.usd"), v));
        if b.period.is_none() {
            add(&format!("{key}.period"), "is required: `day`, `week`, `month` or a duration".into());
        }
        let period =
            b.period.as_deref().and_then(|text| Period::parse(text).map_err(|e| add(&format!("{key}.period"), e)).ok());
        let soft = b.soft_usd.as_ref().and_then(|v| money(add, &format!("{key}.soft_usd"), v));
        if let (Some(s), Some(l)) = (soft, limit)
            && s > l
        {
            add(&format!("{key}.soft_usd"), "exceeds the limit `usd`".into());
        }
        let on_soft = match b.on_soft.as_deref().map(str::trim) {
            None | Some("none") => OnSoft::Nothing,
            Some("flex_only") => OnSoft::FlexOnly,
            Some(other) => {
                add(&format!("{key}.on_soft"), format!("`{other}` is not one of `none`, `flex_only`"));
                OnSoft::Nothing
            }
        };
        if on_soft == OnSoft::FlexOnly && soft.is_none() {
            add(&format!("{key}.on_soft"), "needs `soft_usd`, the point past which it applies".into());
        }
        let fail = match b.fail.as_deref().map(str::trim) {
            None | Some("open") => FailMode::Open,
            Some("closed") => FailMode::Closed,
            Some(other) => {
                add(&format!("{key}.fail"), format!("`{other}` is not one of `open`, `closed`"));
                FailMode::Open
            }
        };
        let default_reserve = toml::Value::String(DEFAULT_RESERVE_USD.into());
        let reserve = money(add, &format!("{key}.reserve_usd"), b.reserve_usd.as_ref().unwrap_or(&default_reserve));
        if let (Some(limit), Some(period), Some(reserve)) = (limit, period, reserve) {
            if limit == 0 {
                add(&format!("{key}.usd"), "must be greater than zero (remove the key for no budget)".into());
            }
            out.push(BudgetLimits { client: client.clone(), limit, period, soft, on_soft, fail, reserve });
        }
    }
    out
}
