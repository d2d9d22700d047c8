//! Knobs of the simulated upstream (`flexgate sim [FLAGS]`): latency per tier, flex
//! capacity failures, the standard rate limit and billing state. Parsing only; the
//! behaviour behind each knob lives in the modules that use it.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Configuration of the simulator. `Default` equals the clap defaults.
#[derive(Clone, Debug, PartialEq, clap::Args)]
pub struct SimConfig {
    /// Time before the response (non-streaming) or before the first chunk (streaming) on the standard tier.
    #[arg(long, default_value = "50ms", value_parser = humantime::parse_duration)]
    pub latency_standard: Duration,
    /// Same as `--latency-standard`, for requests served on flex.
    #[arg(long, default_value = "400ms", value_parser = humantime::parse_duration)]
    pub latency_flex: Duration,
    /// Same as `--latency-standard`, for requests served on priority.
    #[arg(long, default_value = "20ms", value_parser = humantime::parse_duration)]
    pub latency_priority: Duration,
    /// Gap between streamed chunks.
    #[arg(long, default_value = "5ms", value_parser = humantime::parse_duration)]
    pub chunk_interval: Duration,
    /// Probability, from 0 to 1, that a flex request is answered with a flex capacity 429.
    #[arg(long, default_value_t = 0.0, value_parser = parse_probability)]
    pub flex_429_rate: f64,
    /// Scheduled flex outage windows `DOWN/PERIOD`: `10s/60s` = flex unavailable for the
    /// first 10s of every 60s since the sim started.
    #[arg(long, value_parser = FlexOutage::parse)]
    pub flex_outage: Option<FlexOutage>,
    /// Flex capacity over time, as windows of refusal rates `DURATION:RATE,...`
    /// (`10s:0.0,20s:0.95,30s:0.5`): each window's rate replaces `--flex-429-rate` while it
    /// lasts; the trace repeats.
    #[arg(long, value_parser = FlexTrace::parse)]
    pub flex_trace: Option<FlexTrace>,
    /// Organisation rate limit in requests per minute (absent = unlimited). Like OpenAI's,
    /// it counts every attempt of every tier, refused flex attempts included.
    #[arg(long)]
    pub rpm_limit: Option<u32>,
    /// The same limit per second (short tests); used instead of `--rpm-limit` when given.
    #[arg(long)]
    pub rps_limit: Option<u32>,
    /// Every generation request answers 429 `insufficient_quota`.
    #[arg(long)]
    pub quota_exhausted: bool,
    /// RNG seed, so runs (flex 429 draws, ids) are reproducible.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            latency_standard: Duration::from_millis(50),
            latency_flex: Duration::from_millis(400),
            latency_priority: Duration::from_millis(20),
            chunk_interval: Duration::from_millis(5),
            flex_429_rate: 0.0,
            flex_outage: None,
            flex_trace: None,
            rpm_limit: None,
            rps_limit: None,
            quota_exhausted: false,
            seed: 42,
        }
    }
}

impl SimConfig {
    /// Defaults with every latency and the chunk interval at zero (tests, benchmarks).
    pub fn zero_latency() -> Self {
        Self {
            latency_standard: Duration::ZERO,
            latency_flex: Duration::ZERO,
            latency_priority: Duration::ZERO,
            chunk_interval: Duration::ZERO,
            ..Self::default()
        }
    }

    /// The request limit and its window: `--rps-limit` over a second, else `--rpm-limit`
    /// over a minute.
    pub fn request_limit(&self) -> Option<(u32, Duration)> {
        match (self.rps_limit, self.rpm_limit) {
            (Some(n), _) => Some((n, Duration::from_secs(1))),
            (None, Some(n)) => Some((n, Duration::from_secs(60))),
            (None, None) => None,
        }
    }

    /// Latency before the answer for a served tier (`default`, `flex`, `priority`).
    pub fn latency_for(&self, served_tier: Option<&str>) -> Duration {
        match served_tier {
            Some("flex") => self.latency_flex,
            Some("priority") => self.latency_priority,
            _ => self.latency_standard,
        }
    }
}

fn parse_probability(s: &str) -> Result<f64, String> {
    let p: f64 = s.parse().map_err(|e| format!("`{s}` is not a number: {e}"))?;
    if (0.0..=1.0).contains(&p) { Ok(p) } else { Err(format!("`{s}` is not a probability in [0,1]")) }
}

/// Periodic flex outage: flex is down for the first `down` of every `period`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlexOutage {
    pub down: Duration,
    pub period: Duration,
}

impl FlexOutage {
    /// Parses `DOWN/PERIOD` with humantime durations, e.g. `10s/60s`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (down, period) = s.split_once('/').ok_or_else(|| format!("`{s}` is not DOWN/PERIOD (e.g. `10s/60s`)"))?;
        let parse = |part: &str| humantime::parse_duration(part.trim()).map_err(|e| format!("`{part}` in `{s}`: {e}"));
        let outage = Self { down: parse(down)?, period: parse(period)? };
        if outage.period.is_zero() || outage.down > outage.period {
            return Err(format!("`{s}`: need 0 < PERIOD and DOWN <= PERIOD"));
        }
        Ok(outage)
    }

    /// Whether flex is down at `since_start` after the sim started.
    pub fn is_down(&self, since_start: Duration) -> bool {
        since_start.as_nanos() % self.period.as_nanos() < self.down.as_nanos()
    }
}

/// Flex refusal rates over time: consecutive windows, repeating.
#[derive(Clone, Debug, PartialEq)]
pub struct FlexTrace {
    pub windows: Vec<(Duration, f64)>,
}

impl FlexTrace {
    /// Parses `DURATION:RATE,...`, e.g. `10s:0.0,20s:0.95`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let windows = s
            .split(',')
            .map(|part| {
                let (d, p) = part.split_once(':').ok_or_else(|| format!("`{part}` is not DURATION:RATE"))?;
                let d = humantime::parse_duration(d.trim()).map_err(|e| format!("`{d}` in `{s}`: {e}"))?;
                Ok((d, parse_probability(p.trim())?))
            })
            .collect::<Result<Vec<_>, String>>()?;
        if windows.iter().any(|(d, _)| d.is_zero()) {
            return Err(format!("`{s}`: every window needs a duration above zero"));
        }
        Ok(Self { windows })
    }

    /// The refusal rate at `since_start` after the sim started.
    pub fn rate_at(&self, since_start: Duration) -> f64 {
        let period: u128 = self.windows.iter().map(|(d, _)| d.as_nanos()).sum();
        let mut at = since_start.as_nanos() % period.max(1);
        for (d, p) in &self.windows {
            if at < d.as_nanos() {
                return *p;
            }
            at -= d.as_nanos();
        }
        0.0
    }
}

impl FromStr for FlexTrace {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::parse(s)
    }
}

impl FromStr for FlexOutage {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::parse(s)
    }
}

impl fmt::Display for FlexOutage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let down = humantime::format_duration(self.down);
        let period = humantime::format_duration(self.period);
        write!(f, "{down}/{period}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        sim: SimConfig,
    }

    #[test]
    fn clap_defaults_equal_default() {
        let cli = Cli::try_parse_from(["sim"]).unwrap();
        assert_eq!(cli.sim, SimConfig::default());
    }

    #[test]
    fn flags_parse() {
        let cli = Cli::try_parse_from([
            "sim",
            "--latency-flex",
            "2s",
            "--flex-429-rate",
            "0.25",
            "--flex-outage",
            "10s/60s",
            "--rpm-limit",
            "5",
            "--quota-exhausted",
        ])
        .unwrap();
        assert_eq!(cli.sim.latency_flex, Duration::from_secs(2));
        assert!((cli.sim.flex_429_rate - 0.25).abs() < f64::EPSILON);
        assert_eq!(cli.sim.rpm_limit, Some(5));
        assert!(cli.sim.quota_exhausted);
        let outage = cli.sim.flex_outage.unwrap();
        assert_eq!(outage.to_string(), "10s/1m");
        assert!(Cli::try_parse_from(["sim", "--flex-429-rate", "1.5"]).is_err());
        assert!(Cli::try_parse_from(["sim", "--flex-outage", "70s/60s"]).is_err());
    }

    #[test]
    fn flex_traces_and_per_second_limits() {
        let cli = Cli::try_parse_from(["sim", "--flex-trace", "10s:0.0,20s:0.95", "--rps-limit", "5"]).unwrap();
        let trace = cli.sim.flex_trace.clone().unwrap();
        assert!(trace.rate_at(Duration::from_secs(9)).abs() < f64::EPSILON);
        assert!((trace.rate_at(Duration::from_secs(10)) - 0.95).abs() < f64::EPSILON);
        assert!((trace.rate_at(Duration::from_secs(29)) - 0.95).abs() < f64::EPSILON);
        assert!(trace.rate_at(Duration::from_secs(30)).abs() < f64::EPSILON, "the trace repeats");
        assert_eq!(cli.sim.request_limit(), Some((5, Duration::from_secs(1))));
        assert_eq!(SimConfig::default().request_limit(), None);
        for bad in ["10s", "10s:2", "0s:0.5", "soon:0.5"] {
            assert!(Cli::try_parse_from(["sim", "--flex-trace", bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn outage_windows_repeat() {
        let o = FlexOutage::parse("10s/60s").unwrap();
        assert!(o.is_down(Duration::ZERO));
        assert!(o.is_down(Duration::from_millis(9_999)));
        assert!(!o.is_down(Duration::from_secs(10)));
        assert!(!o.is_down(Duration::from_secs(59)));
        assert!(o.is_down(Duration::from_secs(65)));
        assert!(FlexOutage::parse("10s").is_err());
        assert!(FlexOutage::parse("1s/0s").is_err());
    }
}
