//! Report arithmetic: percentiles, counts by class and tier, and cost by hand.

use std::str::FromStr;

use super::*;
use crate::endpoint::Endpoint;
use crate::usage::Usage;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn outcome(class: &str, tier: Option<Tier>, millis: u64) -> Observed {
    Observed {
        id: "x".into(),
        lane: if class == "interactive" { Lane::Interactive } else { Lane::Background },
        class: class.into(),
        endpoint: Endpoint::ChatCompletions,
        stream: false,
        latency: ms(millis),
        tier,
        attempts: Some(1),
        escalated: false,
        model: Some("gpt-5-mini-2025-08-07".into()),
        usage: Some(Usage { input: 1000, cached_input: 0, cache_write: 0, output: 500, reasoning: 250 }),
        error: None,
    }
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

#[test]
fn nearest_rank_percentiles() {
    let sorted: Vec<Duration> = (1..=100).map(ms).collect();
    assert_eq!(percentile(&sorted, 50), Some(ms(50)));
    assert_eq!(percentile(&sorted, 95), Some(ms(95)));
    assert_eq!(percentile(&sorted, 99), Some(ms(99)));
    assert_eq!(percentile(&sorted, 100), Some(ms(100)));
    let three = [ms(10), ms(20), ms(30)];
    assert_eq!(percentile(&three, 50), Some(ms(20)));
    assert_eq!(percentile(&three, 99), Some(ms(30)));
    assert_eq!(percentile(&three, 1), Some(ms(10)));
    assert_eq!(percentile(&[ms(7)], 99), Some(ms(7)));
    assert_eq!(percentile(&[], 50), None);
}

#[test]
fn counts_by_class_tier_and_error() {
    let mut escalated = outcome("background", Some(Tier::Standard), 900);
    escalated.escalated = true;
    escalated.attempts = Some(4);
    let mut absorbed = outcome("background", Some(Tier::Flex), 700);
    absorbed.attempts = Some(3);
    let mut failed = outcome("background", None, 20);
    failed.error = Some("429 insufficient_quota".into());
    let outcomes = vec![
        outcome("background", Some(Tier::Flex), 400),
        escalated,
        absorbed,
        failed,
        outcome("interactive", Some(Tier::Standard), 50),
        outcome("batch-jobs", Some(Tier::Flex), 60),
    ];
    let s = summarize(&outcomes, &PriceTable::embedded());
    assert_eq!(s.requests, 6);
    let names: Vec<&str> = s.classes.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["interactive", "background", "batch-jobs"], "lanes first, then by name");
    let background = &s.classes[1].1;
    assert_eq!(background.requests, 4);
    assert_eq!(background.errors, 1);
    assert_eq!(background.served.get(&Some(tier_key(Tier::Flex))), Some(&2));
    assert_eq!(background.served.get(&Some(tier_key(Tier::Standard))), Some(&1));
    assert_eq!(background.latencies, vec![ms(20), ms(400), ms(700), ms(900)], "sorted, errors included");
    assert_eq!(s.escalations, 1);
    assert_eq!(s.extra_attempts, 3 + 2);
    assert!(s.saw_flexgate);
    assert_eq!(s.errors.get("429 insufficient_quota"), Some(&1));
    assert_eq!(s.error_count(), 1);
    assert_eq!((s.priced, s.unpriced), (5, 0));
}

#[test]
fn cost_and_savings_by_hand() {
    // gpt-5-mini per 1M tokens: standard 0.25 in / 2.00 out, flex 0.125 / 1.00.
    // 1000 in + 500 out: standard 0.00025 + 0.001 = 0.00125; flex 0.000625.
    let outcomes = vec![
        outcome("background", Some(Tier::Flex), 1),
        outcome("background", Some(Tier::Flex), 1),
        outcome("interactive", Some(Tier::Standard), 1),
        outcome("interactive", None, 1),
    ];
    let s = summarize(&outcomes, &PriceTable::embedded());
    assert_eq!(s.cost, dec("0.000625") * Decimal::TWO + dec("0.00125") * Decimal::TWO);
    assert_eq!(s.standard_cost, dec("0.00125") * Decimal::from(4));
    assert_eq!(s.savings(), dec("0.00125"));
    assert_eq!(s.savings_percent(), Some(dec("25.0")));
}

#[test]
fn unpriced_and_empty_runs() {
    let mut unknown = outcome("interactive", Some(Tier::Standard), 1);
    unknown.model = Some("my-finetune".into());
    let mut no_usage = outcome("interactive", Some(Tier::Standard), 1);
    no_usage.usage = None;
    let s = summarize(&[unknown, no_usage], &PriceTable::embedded());
    assert_eq!((s.priced, s.unpriced), (0, 2));
    assert_eq!(s.cost, Decimal::ZERO);
    assert_eq!(s.savings_percent(), None);
    let mut plain = outcome("interactive", Some(Tier::Standard), 1);
    plain.attempts = None;
    assert!(!summarize(&[plain], &PriceTable::embedded()).saw_flexgate);
    assert_eq!(summarize(&[], &PriceTable::embedded()).requests, 0);
}
