//! The figures of one run, their medians over runs, the table per scenario and the
//! verdict against the targets.

use std::fmt::Write as _;

use crate::scenario::Name;

/// What one run of one scenario on one path gave.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Figures {
    pub requests: usize,
    /// Attempts the simulator received (every tier, refused ones included).
    pub attempts: usize,
    pub flex_attempts: usize,
    /// Flex attempts served on flex.
    pub flex_ok: usize,
    pub errors_urgent: usize,
    pub errors_background: usize,
    /// Requests that ended (served or not) after their deadline.
    pub late_urgent: usize,
    pub late_background: usize,
    pub background: usize,
    pub background_on_flex: usize,
    /// Saving on background spend against all of it on standard (a fraction).
    pub saving: f64,
    pub seconds: f64,
}

#[expect(clippy::cast_precision_loss, reason = "request counts are small")]
impl Figures {
    pub fn attempts_per_request(&self) -> f64 {
        self.attempts as f64 / self.requests.max(1) as f64
    }

    /// Flex attempts that were not served, per one that was (not a number without one).
    pub fn wasted_per_flex_success(&self) -> f64 {
        if self.flex_ok == 0 {
            return f64::NAN;
        }
        (self.flex_attempts - self.flex_ok.min(self.flex_attempts)) as f64 / self.flex_ok as f64
    }

    pub fn flex_attempts_per_request(&self) -> f64 {
        self.flex_attempts as f64 / self.requests.max(1) as f64
    }

    pub fn on_flex_share(&self) -> f64 {
        self.background_on_flex as f64 / self.background.max(1) as f64
    }
}

/// A column: its heading and the figure of a run it shows.
type Column = (&'static str, fn(&Figures) -> f64);

const COLUMNS: [Column; 9] = [
    ("attempts/req", Figures::attempts_per_request),
    ("wasted flex/flex ok", Figures::wasted_per_flex_success),
    ("errors urgent", |f| count(f.errors_urgent)),
    ("errors bg", |f| count(f.errors_background)),
    ("late urgent", |f| count(f.late_urgent)),
    ("late bg", |f| count(f.late_background)),
    ("bg on flex", |f| 100.0 * f.on_flex_share()),
    ("saving %", |f| 100.0 * f.saving),
    ("wall s", |f| f.seconds),
];

#[expect(clippy::cast_precision_loss, reason = "request counts are small")]
fn count(n: usize) -> f64 {
    n as f64
}

/// The median of the values that are numbers (not a number if none is).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.retain(|v| !v.is_nan());
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => f64::midpoint(values[n / 2 - 1], values[n / 2]),
    }
}

/// Medians of every column over runs.
pub fn medians(runs: &[Figures]) -> Vec<f64> {
    COLUMNS.iter().map(|(_, f)| median(runs.iter().map(f).collect())).collect()
}

/// The table of one scenario: each path's runs and median, under its label.
pub fn table(title: &str, paths: [(&str, &[Figures]); 2]) -> String {
    let mut out = format!("\n== {title}\n{:<20}", "");
    for (name, _) in COLUMNS {
        let _ = write!(out, "{name:>20}");
    }
    out.push('\n');
    for (label, runs) in paths {
        for (i, run) in runs.iter().enumerate() {
            row(&mut out, &format!("{label} run {}", i + 1), &COLUMNS.iter().map(|(_, f)| f(run)).collect::<Vec<_>>());
        }
        row(&mut out, &format!("{label} median"), &medians(runs));
    }
    out
}

fn row(out: &mut String, label: &str, values: &[f64]) {
    let _ = write!(out, "{label:<20}");
    for v in values {
        if v.is_nan() {
            let _ = write!(out, "{:>20}", "-");
        } else {
            let _ = write!(out, "{v:>20.2}");
        }
    }
    out.push('\n');
}

/// The targets for flexgate in one scenario, each with whether the medians meet it.
pub fn verdicts(name: Name, flexgate: &[Figures], direct: &[Figures]) -> Vec<(String, bool)> {
    let m = |runs: &[Figures], f: fn(&Figures) -> f64| median(runs.iter().map(f).collect());
    let errors = m(flexgate, |f| count(f.errors_urgent + f.errors_background));
    let late = m(flexgate, |f| count(f.late_urgent + f.late_background));
    let saving = m(flexgate, |f| f.saving);
    let clean = (format!("no errors ({errors}) and no deadline misses ({late})"), errors == 0.0 && late == 0.0);
    match name {
        Name::StormLimit => {
            let attempts = m(flexgate, Figures::attempts_per_request);
            let sdk = m(direct, |f| f.saving);
            vec![
                clean,
                (format!("attempts per request {attempts:.2} <= 1.5"), attempts <= 1.5),
                (format!("saving {:.1}% >= the direct SDK's {:.1}%", saving * 100.0, sdk * 100.0), saving >= sdk),
            ]
        }
        Name::Storm => {
            let wasted = m(flexgate, Figures::wasted_per_flex_success);
            vec![
                (format!("wasted flex attempts per flex success {wasted:.2} <= 1.0"), wasted <= 1.0),
                (format!("saving {:.1}% >= 44%", saving * 100.0), saving >= 0.44),
            ]
        }
        Name::Mild => vec![clean, (format!("saving {:.1}% >= 49%", saving * 100.0), saving >= 0.49)],
        Name::Outage => {
            let share = m(flexgate, Figures::on_flex_share);
            let per_request = m(flexgate, Figures::flex_attempts_per_request);
            vec![
                clean,
                (format!("background served on flex {:.1}% >= 95%", share * 100.0), share >= 0.95),
                (format!("flex attempts per request {per_request:.2} (a few at most)"), per_request <= 3.0),
            ]
        }
    }
}
