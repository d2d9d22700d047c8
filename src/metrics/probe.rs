//! Reading one metric exactly, for tests (`cfg(test)` or the `test-util` feature): by its
//! family name and label values, from the registry itself rather than by searching the
//! text exposition, where `flexgate_requests_total` also matches a longer name and a label
//! check can match the wrong series.

use prometheus::proto::{Metric, MetricType};

use super::Metrics;

impl Metrics {
    /// The sum over the series of family `name` whose labels include every `(key, value)`
    /// of `labels`: a counter's or gauge's value, a histogram's observation count. 0 when
    /// no series matches; a name that is not registered panics, so a typo cannot pass as 0.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let families = self.registry.gather();
        let Some(family) = families.iter().find(|f| f.name() == name) else {
            panic!("no metric family named {name}");
        };
        let kind = family.get_field_type();
        family.get_metric().iter().filter(|m| matches(m, labels)).map(|m| sample(m, kind)).sum()
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
