//! The processing tier and every mapping between it and text: what a response reports,
//! what a client asks for, what flexgate sends upstream, what a class configures, and
//! the bounded metric and header label.

/// A processing tier as billed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tier {
    Standard,
    Flex,
    Priority,
    Batch,
}

// === impl Tier ===

impl Tier {
    pub const ALL: [Tier; 4] = [Tier::Standard, Tier::Flex, Tier::Priority, Tier::Batch];

    /// The billed tier for a `service_tier` a response reports (ASCII case-insensitive):
    /// `default`/`standard` → Standard, `flex`, `priority`/`fast` (the 2026 name of
    /// priority) → Priority, `batch`. `scale` (legacy Scale Tier, prepaid reserved
    /// capacity) → Standard: its marginal price is unknown, and Standard is what the
    /// same tokens cost without the commitment. `auto` is a request setting, not a
    /// billed rate, so it and anything else (e.g. `ultrafast`) → `None`.
    pub fn from_reported(s: &str) -> Option<Tier> {
        const NAMES: [(&str, Tier); 7] = [
            ("default", Tier::Standard),
            ("standard", Tier::Standard),
            ("scale", Tier::Standard),
            ("flex", Tier::Flex),
            ("priority", Tier::Priority),
            ("fast", Tier::Priority),
            ("batch", Tier::Batch),
        ];
        NAMES.iter().find(|(name, _)| name.eq_ignore_ascii_case(s)).map(|&(_, tier)| tier)
    }

    /// The tier a client's explicit `service_tier` asks for (exact spelling, as the API
    /// accepts it); `auto` and unknown values ask for none.
    pub fn from_client(s: &str) -> Option<Tier> {
        match s {
            "flex" => Some(Tier::Flex),
            "default" => Some(Tier::Standard),
            "priority" | "fast" => Some(Tier::Priority),
            _ => None,
        }
    }

    /// A class's configured `tier`: `flex`, `standard` or `priority`.
    pub fn from_config(s: &str) -> Option<Tier> {
        match s {
            "flex" => Some(Tier::Flex),
            "standard" => Some(Tier::Standard),
            "priority" => Some(Tier::Priority),
            _ => None,
        }
    }

    /// The `service_tier` text that pins this tier upstream; never `auto`, which a project
    /// may map to priority pricing.
    pub fn param(self) -> &'static str {
        match self {
            Tier::Flex => "flex",
            Tier::Priority => "priority",
            Tier::Standard | Tier::Batch => "default",
        }
    }

    /// Bounded label and config key: `standard`, `flex`, `priority`, `batch`.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Standard => "standard",
            Tier::Flex => "flex",
            Tier::Priority => "priority",
            Tier::Batch => "batch",
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            Tier::Standard => 0,
            Tier::Flex => 1,
            Tier::Priority => 2,
            Tier::Batch => 3,
        }
    }
}

/// The metric label, log field and `x-flexgate-tier` value of a possibly unknown tier.
pub fn label(tier: Option<Tier>) -> &'static str {
    tier.map_or("none", Tier::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_from_reported_values() {
        let cases = [
            ("default", Some(Tier::Standard)),
            ("standard", Some(Tier::Standard)),
            ("scale", Some(Tier::Standard)),
            ("flex", Some(Tier::Flex)),
            ("FLEX", Some(Tier::Flex)),
            ("priority", Some(Tier::Priority)),
            ("fast", Some(Tier::Priority)),
            ("batch", Some(Tier::Batch)),
            ("auto", None),
            ("ultrafast", None),
            ("", None),
            (" flex", None),
        ];
        for (reported, want) in cases {
            assert_eq!(Tier::from_reported(reported), want, "{reported}");
        }
        for tier in Tier::ALL {
            assert_eq!(Tier::from_reported(tier.as_str()), Some(tier));
        }
    }

    #[test]
    fn what_is_sent_upstream_reads_back_as_the_same_tier() {
        for tier in [Tier::Standard, Tier::Flex, Tier::Priority] {
            assert_eq!(Tier::from_client(tier.param()), Some(tier));
            assert_eq!(Tier::from_reported(tier.param()), Some(tier));
            assert_eq!(Tier::from_config(tier.as_str()), Some(tier));
        }
        assert_eq!(Tier::from_client("auto"), None);
        assert_eq!(label(None), "none");
        assert_eq!(label(Some(Tier::Flex)), "flex");
    }
}
