use std::collections::HashMap;
use std::time::Duration;

use http::{HeaderMap, HeaderValue};

use super::{Plan, RouteInput, plan};
use crate::config::Config;
use crate::error::GatewayError;
use crate::tier::Tier;

fn config(extra: &str) -> Config {
    let mut env = HashMap::new();
    env.insert("KEY_BATCH".to_owned(), "sk-batch".to_owned());
    env.insert("OPENAI_API_KEY".to_owned(), "sk-up".to_owned());
    Config::from_toml(extra, &env).unwrap()
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(*k, HeaderValue::from_str(v).unwrap());
    }
    h
}

fn route(c: &Config, h: &HeaderMap, lane: Option<&str>, model: &str, tier: Option<&str>) -> Result<Plan, GatewayError> {
    let input = RouteInput {
        headers: h,
        lane: lane.and_then(|l| c.class_by_name(l)),
        client: None,
        model: Some(model),
        client_tier: tier,
        tier_routed: true,
    };
    plan(c, &input)
}

fn class_name(c: &Config, p: &Plan) -> String {
    c.class(p.class).name.clone()
}

#[test]
fn default_lane_is_interactive_standard_and_untouched() {
    let c = config("");
    let p = route(&c, &HeaderMap::new(), None, "gpt-5", None).unwrap();
    assert_eq!(class_name(&c, &p), "interactive");
    assert_eq!(p.tier, Some(Tier::Standard));
    assert_eq!(p.tier_override, None);
    assert!(!p.escalate);
    assert_eq!(p.deadline, Duration::from_secs(600));
}

#[test]
fn flex_lane_is_background_flex_escalating() {
    let c = config("");
    let p = route(&c, &HeaderMap::new(), Some("background"), "gpt-5-2025-08-07", None).unwrap();
    assert_eq!(class_name(&c, &p), "background");
    assert_eq!((p.tier, p.tier_override, p.escalate), (Some(Tier::Flex), Some("flex"), true));
    assert_eq!(p.deadline, Duration::from_secs(900));
    assert_eq!(p.max_attempts, 8);
}

#[test]
fn client_tier_wins_over_header_and_lane() {
    let c = config("");
    let h = headers(&[("x-flexgate-class", "background")]);
    let p = route(&c, &h, Some("background"), "gpt-5", Some("default")).unwrap();
    assert_eq!(class_name(&c, &p), "interactive");
    assert_eq!((p.tier, p.tier_override), (Some(Tier::Standard), None));
    let p = route(&c, &HeaderMap::new(), None, "gpt-5", Some("flex")).unwrap();
    assert_eq!(class_name(&c, &p), "background");
    assert_eq!((p.tier, p.tier_override), (Some(Tier::Flex), None));
    let p = route(&c, &HeaderMap::new(), None, "gpt-5", Some("priority")).unwrap();
    assert_eq!((p.tier, p.tier_override), (Some(Tier::Priority), None));
    // `auto` is not an explicit tier: the lane decides.
    let p = route(&c, &HeaderMap::new(), Some("background"), "gpt-5", Some("auto")).unwrap();
    assert_eq!((p.tier, p.tier_override), (Some(Tier::Flex), Some("flex")));
}

#[test]
fn honor_client_tier_off_overrides_the_client() {
    let c = config("[routing]\nhonor_client_tier = false\n");
    let p = route(&c, &HeaderMap::new(), None, "gpt-5", Some("flex")).unwrap();
    assert_eq!(class_name(&c, &p), "interactive");
    assert_eq!((p.tier, p.tier_override), (Some(Tier::Standard), Some("default")));
}

#[test]
fn header_beats_lane_and_unknown_header_class_is_400() {
    let c = config("");
    let h = headers(&[("x-flexgate-class", "interactive")]);
    let p = route(&c, &h, Some("background"), "gpt-5", None).unwrap();
    assert_eq!(class_name(&c, &p), "interactive");
    let h = headers(&[("x-flexgate-class", "cheap")]);
    match route(&c, &h, None, "gpt-5", None) {
        Err(GatewayError::UnknownClass { valid, .. }) => {
            assert!(valid.contains("`background`") && valid.contains("`interactive`"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn rules_match_model_header_and_client() {
    let c = config(
        r#"
[auth]
mode = "managed"
[[auth.keys]]
client = "batch"
env = "KEY_BATCH"
[[routing.rules]]
class = "background"
model = "gpt-5-mini"
[[routing.rules]]
class = "background"
header = "x-job-kind: enrichment"
[[routing.rules]]
class = "background"
client = "batch"
"#,
    );
    let none = HeaderMap::new();
    assert_eq!(class_name(&c, &route(&c, &none, None, "gpt-5-mini-2025-08-07", None).unwrap()), "background");
    assert_eq!(class_name(&c, &route(&c, &none, None, "gpt-5", None).unwrap()), "interactive");
    let h = headers(&[("x-job-kind", "enrichment")]);
    assert_eq!(class_name(&c, &route(&c, &h, None, "gpt-5", None).unwrap()), "background");
    let input = RouteInput {
        headers: &none,
        lane: None,
        client: Some("batch"),
        model: Some("gpt-5"),
        client_tier: None,
        tier_routed: true,
    };
    assert_eq!(class_name(&c, &plan(&c, &input).unwrap()), "background");
}

#[test]
fn ineligible_models_go_standard_and_are_flagged() {
    let c = config("");
    let p = route(&c, &HeaderMap::new(), Some("background"), "gpt-4o", None).unwrap();
    assert_eq!((p.tier, p.tier_override, p.escalate, p.flex_ineligible), (Some(Tier::Standard), None, false, true));
    let p = route(&c, &HeaderMap::new(), Some("background"), "my-finetune", None).unwrap();
    assert!(p.flex_ineligible);
}

#[test]
fn untiered_endpoints_get_a_class_but_no_tier() {
    let c = config("");
    let none = HeaderMap::new();
    let input = RouteInput {
        headers: &none,
        lane: c.class_by_name("background"),
        client: None,
        model: Some("text-embedding-3-small"),
        client_tier: None,
        tier_routed: false,
    };
    let p = plan(&c, &input).unwrap();
    assert_eq!((p.tier, p.tier_override, p.flex_ineligible), (None, None, false));
}

#[test]
fn deadline_is_the_smallest_source() {
    let c = config("");
    let h = headers(&[("x-flexgate-deadline", "30s")]);
    assert_eq!(route(&c, &h, Some("background"), "gpt-5", None).unwrap().deadline, Duration::from_secs(30));
    let h = headers(&[("x-stainless-read-timeout", "120.0")]);
    assert_eq!(route(&c, &h, Some("background"), "gpt-5", None).unwrap().deadline, Duration::from_secs(115));
    let h = headers(&[("x-stainless-timeout", "6")]);
    assert_eq!(route(&c, &h, None, "gpt-5", None).unwrap().deadline, Duration::from_secs(3));
    let h = headers(&[("x-flexgate-deadline", "2h")]);
    assert_eq!(route(&c, &h, None, "gpt-5", None).unwrap().deadline, Duration::from_secs(600));
    let h = headers(&[("x-stainless-timeout", "soon")]);
    assert_eq!(route(&c, &h, None, "gpt-5", None).unwrap().deadline, Duration::from_secs(600));
    for bad in ["soon", "0s", "-5s", "", "10 parsecs"] {
        let h = headers(&[("x-flexgate-deadline", bad)]);
        assert!(matches!(route(&c, &h, None, "gpt-5", None), Err(GatewayError::BadDeadline { .. })), "{bad}");
    }
}
