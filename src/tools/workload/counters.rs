//! flexgate's own counters around a run: `/metrics` is read before and after, and the
//! difference says how many flex 429s the gateway absorbed and how many times it
//! escalated, retried or gave up. Best effort: a target that is not flexgate (or
//! whose metrics sit on another address) simply yields `None`, and the report says the
//! figure was not measured. On a shared gateway the difference includes other clients'
//! traffic during the run.

use std::time::Duration;

/// Counters read from one scrape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Flex attempts answered with a capacity 429.
    pub flex_429: u64,
    /// Attempts of any tier that were retried.
    pub retries: u64,
    pub escalations: u64,
}

impl Counters {
    /// `after − self`, saturating (a gateway restart resets counters).
    #[must_use]
    pub fn delta(self, after: Counters) -> Counters {
        Counters {
            flex_429: after.flex_429.saturating_sub(self.flex_429),
            retries: after.retries.saturating_sub(self.retries),
            escalations: after.escalations.saturating_sub(self.escalations),
        }
    }
}

/// Scrape `url`; `None` unless it answers 200 with flexgate's metrics.
pub async fn scrape(http: &reqwest::Client, url: &str) -> Option<Counters> {
    let response = http.get(url).timeout(Duration::from_secs(5)).send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    let text = response.text().await.ok()?;
    parse(&text)
}

/// Read the counters from Prometheus text; `None` if it has no flexgate metrics.
pub fn parse(text: &str) -> Option<Counters> {
    if !text.contains("flexgate_") {
        return None;
    }
    Some(Counters {
        flex_429: sum(text, "flexgate_upstream_attempts_total", &[("tier", "flex"), ("result", "flex_capacity")]),
        retries: sum(text, "flexgate_retries_total", &[]),
        escalations: sum(text, "flexgate_escalations_total", &[]),
    })
}

/// The sum of an integer counter's samples that carry every given label.
fn sum(text: &str, name: &str, labels: &[(&str, &str)]) -> u64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with(['{', ' '])))
        .filter(|l| labels.iter().all(|(k, v)| l.contains(&format!("{k}=\"{v}\""))))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// flexgate's `/metrics` on the origin of `base_url` (`http://h:8080/v1` → `http://h:8080/metrics`).
pub fn default_url(base_url: &str) -> Option<String> {
    let url = url::Url::parse(base_url).ok()?;
    let mut metrics = url.join("/metrics").ok()?;
    metrics.set_query(None);
    Some(metrics.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# HELP flexgate_upstream_attempts_total Upstream attempts.
flexgate_upstream_attempts_total{result=\"flex_capacity\",tier=\"flex\"} 61
flexgate_upstream_attempts_total{result=\"success\",tier=\"flex\"} 130
flexgate_upstream_attempts_total{result=\"flex_capacity\",tier=\"standard\"} 2
flexgate_retries_total{reason=\"flex_capacity\",tier=\"flex\"} 58
flexgate_retries_total{reason=\"server_error\",tier=\"standard\"} 1
flexgate_escalations_total{class=\"background\",model=\"gpt-5-mini\",reason=\"deadline\"} 3
flexgate_escalations_total_extra 99
";

    #[test]
    fn reads_the_counters() {
        let c = parse(TEXT).unwrap();
        assert_eq!(c, Counters { flex_429: 61, retries: 59, escalations: 3 });
        assert_eq!(parse("up 1\n"), None, "not flexgate");
        assert_eq!(parse("# flexgate_ nothing yet\n"), Some(Counters::default()));
    }

    #[test]
    fn deltas_saturate() {
        let before = Counters { flex_429: 10, retries: 5, escalations: 1 };
        let after = Counters { flex_429: 71, retries: 4, escalations: 4 };
        assert_eq!(before.delta(after), Counters { flex_429: 61, retries: 0, escalations: 3 });
    }

    #[test]
    fn metrics_url_from_the_base_url() {
        assert_eq!(default_url("http://127.0.0.1:8080/v1").as_deref(), Some("http://127.0.0.1:8080/metrics"));
        assert_eq!(default_url("http://gw/flex/v1/").as_deref(), Some("http://gw/metrics"));
        assert_eq!(default_url("not a url"), None);
    }
}
