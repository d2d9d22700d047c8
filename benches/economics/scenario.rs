//! The scenarios: what the simulated upstream does (flex refusals over time, a shared rate
//! limit, an outage) and the workload sent to it. Every scenario sends the same kind of
//! mix: requests evenly spaced at `rate` per second, each urgent with probability 30 %
//! (a few seconds of deadline, the standard tier) or background otherwise (tens of
//! seconds, or minutes in the outage, flex first).

use std::time::Duration;

use flexgate::sim::{FlexOutage, FlexTrace, SimConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Share of urgent requests, in percent.
const URGENT_PERCENT: u32 = 30;

/// A capacity storm: refusal rates from none to 95 %, 40 % on average, in a 20 s cycle.
const STORM: &str = "3s:0.0,3s:0.3,4s:0.6,4s:0.95,3s:0.5,3s:0.1";
/// Mild weather: a few refusals, now and then a fifth.
const MILD: &str = "10s:0.05,5s:0.2,5s:0.0";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Name {
    Mild,
    Storm,
    StormLimit,
    Outage,
}

/// One scenario: the upstream's weather and the workload.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub title: String,
    pub sim: SimConfig,
    /// Requests per second, evenly spaced.
    pub rate: u32,
    /// How long requests keep arriving.
    pub arrivals: Duration,
    pub urgent_deadline: Duration,
    pub background_deadline: Duration,
}

impl Scenario {
    pub fn new(name: Name, seed: u64) -> Self {
        let trace = |t: &str| FlexTrace::parse(t).ok();
        let sim = SimConfig {
            latency_standard: Duration::from_millis(300),
            latency_flex: Duration::from_millis(800),
            seed,
            ..SimConfig::default()
        };
        let base = |title: &str, sim: SimConfig| Scenario {
            title: title.to_owned(),
            sim,
            rate: 10,
            arrivals: Duration::from_secs(20),
            urgent_deadline: Duration::from_secs(5),
            background_deadline: Duration::from_secs(30),
        };
        match name {
            Name::Mild => {
                base(&format!("mild trace (flex refuses {MILD})"), SimConfig { flex_trace: trace(MILD), ..sim })
            }
            Name::Storm => {
                base(&format!("storm (flex refuses {STORM})"), SimConfig { flex_trace: trace(STORM), ..sim })
            }
            Name::StormLimit => base(
                &format!("storm sharing a limit of 12 requests/s (arrivals 10/s; flex refuses {STORM})"),
                SimConfig { flex_trace: trace(STORM), rps_limit: Some(12), ..sim },
            ),
            Name::Outage => Scenario {
                rate: 4,
                arrivals: Duration::from_secs(40),
                background_deadline: Duration::from_secs(180),
                ..base(
                    "flex outage of 60 s from the start, background deadlines 3 min",
                    SimConfig {
                        flex_outage: Some(FlexOutage {
                            down: Duration::from_secs(60),
                            period: Duration::from_secs(3600),
                        }),
                        ..sim
                    },
                )
            },
        }
    }

    /// The workload: (when it starts, urgent?) for every request, the same for one seed.
    pub fn arrivals(&self, seed: u64) -> Vec<(Duration, bool)> {
        let mut rng = StdRng::seed_from_u64(seed);
        let n = self.rate * u32::try_from(self.arrivals.as_secs()).unwrap_or(u32::MAX);
        (0..n).map(|i| (Duration::from_secs(1) * i / self.rate, rng.random_ratio(URGENT_PERCENT, 100))).collect()
    }
}
