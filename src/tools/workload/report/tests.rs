//! The rendered report, whole: a change to its layout shows up here first.

use std::collections::BTreeMap;
use std::str::FromStr;

use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn class(requests: usize, served: &[(Option<TierKey>, usize)], errors: usize, latencies: &[u64]) -> ClassStats {
    ClassStats {
        requests,
        served: served.iter().copied().collect(),
        errors,
        latencies: latencies.iter().copied().map(ms).collect(),
    }
}

fn sample() -> (Summary, RunInfo) {
    let (std, flex) = (Some(tier_key(Tier::Standard)), Some(tier_key(Tier::Flex)));
    let summary = Summary {
        requests: 10,
        classes: vec![
            ("interactive".into(), class(3, &[(std, 3)], 0, &[40, 50, 60])),
            ("background".into(), class(7, &[(std, 1), (flex, 5)], 1, &[20, 300, 400, 450, 900, 1500, 2600])),
        ],
        errors: BTreeMap::from([("429 insufficient_quota".to_owned(), 1)]),
        extra_attempts: 6,
        escalations: 1,
        saw_flexgate: true,
        cost: Decimal::from_str("0.012").unwrap(),
        standard_cost: Decimal::from_str("0.02").unwrap(),
        priced: 9,
        unpriced: 0,
    };
    let info = RunInfo {
        target: "http://gw/v1 (background: http://gw/flex/v1)".into(),
        concurrency: 4,
        wall: Duration::from_secs(2),
        gateway: Some(Counters { flex_429: 5, retries: 6, escalations: 1 }),
        prices_as_of: "2026-11-01".into(),
    };
    (summary, info)
}

#[test]
fn the_whole_report() {
    let (summary, info) = sample();
    let expected = "\
flexgate workload report
  target       http://gw/v1 (background: http://gw/flex/v1)
  requests     10 in 2.00s at concurrency 4, 5.0 req/s

Requests by class and served tier
  class           requests  standard      flex    errors
  interactive            3         3         0         0
  background             7         1         5         1
  total                 10         4         5         1

Absorbed by the gateway (the clients never saw these)
  failed upstream attempts retried      6
    of which flex 429s                  5
  escalations flex -> standard          1

Client-visible errors                   1
  429 insufficient_quota                1

Latency by class (send to last byte, errors included)
  class                p50       p95       p99       max
  interactive         50ms      60ms      60ms      60ms
  background         450ms     2.60s     2.60s     2.60s

Cost (reported usage x embedded prices as of 2026-11-01)
  this run                        $0.012000
  all on standard                 $0.020000
  savings                         $0.008000 (40.0%)
";
    assert_eq!(render(&summary, &info), expected);
}

#[test]
fn without_flexgate_or_its_metrics() {
    let (mut summary, mut info) = sample();
    info.gateway = None;
    let text = render(&summary, &info);
    assert!(text.contains("of which flex 429s             not measured"), "{text}");
    summary.saw_flexgate = false;
    summary.unpriced = 2;
    summary.classes[1].1.served.insert(None, 1);
    let text = render(&summary, &info);
    assert!(text.contains("n/a: the target sent no x-flexgate-* headers"), "{text}");
    assert!(!text.contains("escalations"), "{text}");
    assert!(text.contains("unpriced requests                       2"), "{text}");
    assert!(text.contains("  class           requests  standard      flex      none    errors"), "{text}");
}

#[test]
fn units() {
    assert_eq!(duration(ms(999)), "999ms");
    assert_eq!(duration(ms(1000)), "1.00s");
    assert_eq!(duration(Duration::from_secs(75)), "75.00s");
    assert_eq!(usd(Decimal::from_str("0.0000001").unwrap()), "$0.000000");
    assert_eq!(usd(Decimal::from_str("12.3456789").unwrap()), "$12.345679");
}
