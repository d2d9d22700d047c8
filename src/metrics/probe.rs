//! Reading one metric exactly, for tests (`cfg(test)` or the `test-util` feature): by its
//! family name and label values, from the registry itself rather than by searching the
//! text exposition, where `flexgate_requests_total` also matches a longer name and a label
//! check can match the wrong series.

use prometheus::proto::{Metric, MetricType};

use super::Metrics;

impl Metrics {
    /// The sum over the series of family `name` whose labels include every `(key, value)`
    /// of `labels`: a counter's or gauge's value, a histogram's observation count. 0 when
    /// no series matches, as when a labelled family has no series yet.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.registry
            .gather()
            .iter()
            .filter(|family| family.name() == name)
            .flat_map(|family| family.get_metric().iter().map(move |m| (m, family.get_field_type())))
            .filter(|(m, _)| matches(m, labels))
            .map(|(m, kind)| sample(m, kind))
            .sum()
    }

    /// [`Self::value`] of a metric that counts whole things: requests, attempts, tokens.
    #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "the value is a whole count")]
    pub fn count(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.value(name, labels) as u64
    }
}

fn matches(metric: &Metric, labels: &[(&str, &str)]) -> bool {
    labels.iter().all(|(key, value)| metric.get_label().iter().any(|l| l.name() == *key && l.value() == *value))
}

#[expect(clippy::cast_precision_loss, reason = "observation counts in tests are far below 2^52")]
fn sample(metric: &Metric, kind: MetricType) -> f64 {
    match kind {
        MetricType::COUNTER => metric.get_counter().get_value(),
        MetricType::GAUGE => metric.get_gauge().get_value(),
        MetricType::HISTOGRAM => metric.get_histogram().get_sample_count() as f64,
        MetricType::SUMMARY => metric.get_summary().sample_count() as f64,
        // flexgate registers no untyped metric; NaN fails any comparison a test makes.
        MetricType::UNTYPED => f64::NAN,
    }
}

#[cfg(test)]
mod tests {
    use super::Metrics;

    #[test]
    fn reads_one_series_or_sums_the_matching_ones() {
        let m = Metrics::new(&["interactive", "background"]).unwrap();
        m.deadline_exceeded.with_label_values(&["interactive"]).inc_by(3);
        m.deadline_exceeded.with_label_values(&["background"]).inc();
        m.inflight.with_label_values(&["background"]).set(2);
        assert_eq!(m.count("flexgate_deadline_exceeded_total", &[("class", "interactive")]), 3);
        assert_eq!(m.count("flexgate_deadline_exceeded_total", &[]), 4);
        assert_eq!(m.count("flexgate_deadline_exceeded_total", &[("class", "batch")]), 0);
        assert_eq!(m.count("flexgate_inflight_requests", &[("class", "background")]), 2);
    }

    #[test]
    fn a_family_without_series_reads_zero() {
        let m = Metrics::new(&["interactive"]).unwrap();
        assert_eq!(m.count("flexgate_retries_total", &[]), 0);
    }
}
