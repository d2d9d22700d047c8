//! Medians, percentiles and the printed tables.

use std::fmt::Write as _;

/// The `p` quantile (0..=1) of sorted samples, nearest rank; 0 when empty.
#[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "p is in 0..=1, so rank is in 0..=last")]
pub fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let last = sorted.len() - 1;
    let rank = (p * f64::from(u32::try_from(last).unwrap_or(u32::MAX))).round();
    let index = usize::try_from(rank as u64).unwrap_or(last).min(last);
    f64::from(sorted[index])
}

/// Median of the runs (mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => f64::midpoint(v[n / 2 - 1], v[n / 2]),
    }
}

/// One measured quantity across runs.
pub struct Row {
    pub label: String,
    pub values: Vec<f64>,
    pub decimals: usize,
}

/// A titled table of rows, one column per run plus the median.
pub struct Table {
    /// Short stable name (`nonstream`, `rated`, `stream`, `held`, `budgets`, `budgets-rated`).
    pub key: &'static str,
    pub title: String,
    pub rows: Vec<Row>,
}

impl Table {
    pub fn new(key: &'static str, title: &str) -> Self {
        Self { key, title: title.to_owned(), rows: Vec::new() }
    }

    pub fn add(&mut self, label: &str, decimals: usize, value: f64) {
        match self.rows.iter_mut().find(|r| r.label == label) {
            Some(row) => row.values.push(value),
            None => self.rows.push(Row { label: label.to_owned(), values: vec![value], decimals }),
        }
    }

    pub fn median(&self, label: &str) -> Option<f64> {
        self.rows.iter().find(|r| r.label == label).map(|r| median(&r.values))
    }

    /// The median over runs of `label`'s value divided by `floor`'s in the same run.
    pub fn median_ratio(&self, label: &str, floor: &str) -> Option<f64> {
        let row = |l: &str| self.rows.iter().find(|r| r.label == l);
        let (a, b) = (row(label)?, row(floor)?);
        let ratios: Vec<f64> = a.values.iter().zip(&b.values).filter(|(_, b)| **b > 0.0).map(|(a, b)| a / b).collect();
        (!ratios.is_empty()).then(|| median(&ratios))
    }

    pub fn render(&self) -> String {
        let mut out = format!("\n== {} ==\n", self.title);
        let width = self.rows.iter().map(|r| r.label.len()).max().unwrap_or(10);
        let runs = self.rows.iter().map(|r| r.values.len()).max().unwrap_or(0);
        let _ = write!(out, "{:width$}", "");
        for i in 1..=runs {
            let _ = write!(out, " {:>12}", format!("run {i}"));
        }
        let _ = writeln!(out, " {:>12}", "median");
        for row in &self.rows {
            let d = row.decimals;
            let _ = write!(out, "{:width$}", row.label);
            for v in &row.values {
                let _ = write!(out, " {v:>12.d$}");
            }
            for _ in row.values.len()..runs {
                let _ = write!(out, " {:>12}", "");
            }
            let _ = writeln!(out, " {:>12.d$}", median(&row.values));
        }
        out
    }

    pub fn to_json(&self) -> serde_json::Value {
        let rows: serde_json::Map<String, serde_json::Value> = self
            .rows
            .iter()
            .map(|r| (r.label.clone(), serde_json::json!({"runs": r.values, "median": median(&r.values)})))
            .collect();
        serde_json::json!({"key": self.key, "title": self.title, "rows": rows})
    }
}
