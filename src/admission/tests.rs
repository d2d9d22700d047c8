//! The controller's rules on paused time: every wait is exact, nothing sleeps for real.

use std::time::Duration;

use http::HeaderMap;
use tokio::time::Instant;

use super::flex::{Flex, FlexGate, FlexResult};
use super::*;

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn settings() -> Settings {
    let mut s = Settings::default();
    s.flex.initial_limit = 8;
    s.flex.close_after = 1000;
    s
}

fn leak(model: Model) -> &'static Model {
    Box::leak(Box::new(model))
}

fn model(s: Settings) -> &'static Model {
    leak(Model::with_coin("m", s, || 0.5))
}

fn flex(deadline: f64, reserve: f64) -> Ask {
    let now = Instant::now();
    Ask {
        tier: Some(Tier::Flex),
        urgent: false,
        first: true,
        may_escalate: true,
        escalate_at: now + secs(deadline - reserve),
        deadline: now + secs(deadline),
    }
}

fn standard(urgent: bool) -> Ask {
    let now = Instant::now();
    Ask {
        tier: Some(Tier::Standard),
        urgent,
        first: true,
        may_escalate: false,
        escalate_at: now + secs(60.0),
        deadline: now + secs(60.0),
    }
}

async fn go(m: &'static Model, ask: Ask) -> Permit<'static> {
    match m.admit(ask).await.admit {
        Admit::Go(p) => p,
        other => panic!("expected to go, got {other:?}"),
    }
}

fn capacity(hint: Option<f64>) -> Answered {
    Answered::FlexCapacity { hint: hint.map(secs) }
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in pairs {
        h.insert(http::HeaderName::from_bytes(name.as_bytes()).unwrap(), value.parse().unwrap());
    }
    h
}

fn limits(limit: &str, remaining: &str, reset: &str) -> HeaderMap {
    headers(&[
        ("x-ratelimit-limit-requests", limit),
        ("x-ratelimit-remaining-requests", remaining),
        ("x-ratelimit-reset-requests", reset),
    ])
}

/// Whether the task is still waiting after the runtime ran everything it could.
async fn pending<T>(task: &tokio::task::JoinHandle<T>) -> bool {
    tokio::task::yield_now().await;
    !task.is_finished()
}

#[tokio::test(start_paused = true)]
async fn capacity_429s_cut_the_limit_and_accepted_attempts_raise_it() {
    let mut s = settings();
    s.flex.backoff_ratio = 0.5;
    let m = model(s);
    let mut permits = Vec::new();
    for _ in 0..8 {
        permits.push(go(m, flex(600.0, 120.0)).await);
    }
    assert_eq!(m.snapshot().flex_limit, 8);
    // At the limit: the next one waits.
    let waiter = tokio::spawn(m.admit(flex(600.0, 120.0)));
    assert!(pending(&waiter).await);
    // One burst of refusals is one cut.
    permits.pop().unwrap().report(capacity(None), None, Duration::ZERO);
    permits.pop().unwrap().report(capacity(None), None, Duration::ZERO);
    assert_eq!(m.snapshot().flex_limit, 4);
    tokio::time::advance(secs(1.0)).await;
    permits.pop().unwrap().report(capacity(None), None, Duration::ZERO);
    assert_eq!(m.snapshot().flex_limit, 2);
    // Five still in flight, limit 2: accepted answers at the limit raise it additively.
    for p in permits.drain(..) {
        p.report(Answered::Success, None, Duration::ZERO);
    }
    let limit = m.snapshot().flex_limit;
    assert!((3..=4).contains(&limit), "additive increase from 2, got {limit}");
    // The waiter was released once the in-flight count fell under the limit.
    assert!(matches!(waiter.await.unwrap().admit, Admit::Go(_)));
}

#[tokio::test(start_paused = true)]
async fn a_steady_trickle_of_refusals_does_not_cut_the_limit() {
    let mut s = settings();
    s.flex.backoff_ratio = 0.5;
    let m = model(s);
    // One refusal in ten answers, every second: the share flex refuses whatever we send.
    for _ in 0..5 {
        for _ in 0..9 {
            go(m, flex(600.0, 120.0)).await.report(Answered::Success, None, Duration::ZERO);
        }
        go(m, flex(600.0, 120.0)).await.report(capacity(None), None, Duration::ZERO);
        tokio::time::advance(secs(1.0)).await;
    }
    assert_eq!(m.snapshot().flex_limit, 8);
    // Refusals that become a third of the answers are congestion: the limit is cut.
    for _ in 0..4 {
        go(m, flex(600.0, 120.0)).await.report(capacity(None), None, Duration::ZERO);
    }
    assert_eq!(m.snapshot().flex_limit, 4);
}

#[tokio::test(start_paused = true)]
async fn the_limit_is_not_raised_when_it_was_not_reached() {
    let m = model(settings());
    for _ in 0..20 {
        go(m, flex(600.0, 120.0)).await.report(Answered::Success, None, Duration::ZERO);
    }
    assert_eq!(m.snapshot().flex_limit, 8);
}

#[tokio::test(start_paused = true)]
async fn refusals_throttle_new_flex_attempts_locally() {
    let mut s = settings();
    s.flex.initial_limit = 100;
    s.flex.backoff_ratio = 0.99;
    let m = model(s);
    // 10 requests, 0 accepts: reject probability 10/11, above the coin's 0.5.
    for _ in 0..10 {
        go(m, flex(600.0, 120.0)).await.report(capacity(None), None, Duration::ZERO);
    }
    let waiter = tokio::spawn(m.admit(flex(600.0, 120.0)));
    assert!(pending(&waiter).await);
    // Accepts bring the probability down: (12 - 2·5)/13 < 0.5 lets it through.
    let lucky = leak(Model::with_coin("m", s, || 0.999));
    for _ in 0..10 {
        go(lucky, flex(600.0, 120.0)).await.report(capacity(None), None, Duration::ZERO);
    }
    assert!(matches!(lucky.admit(flex(600.0, 120.0)).await.admit, Admit::Go(_)));
    // The history window forgets old refusals.
    tokio::time::advance(secs(121.0)).await;
    let got = waiter.await.unwrap();
    assert!(matches!(got.admit, Admit::Go(_)));
    assert_eq!(got.why, Some(WaitReason::FlexThrottled));
}

#[test]
fn reject_probability_follows_the_sre_formula() {
    let now = Instant::now();
    let mut f = Flex::new(Settings::default().flex, now);
    assert!(f.reject_probability(now).abs() < 1e-12);
    for i in 0..9 {
        f.sent(false, now);
        let result = if i < 3 { FlexResult::Accepted } else { FlexResult::Capacity { hint: None } };
        f.answered(false, result, now);
    }
    // requests 9, accepts 3, K = 2: (9 - 6) / 10.
    assert!((f.reject_probability(now) - 0.3).abs() < 1e-9);
}

#[tokio::test(start_paused = true)]
async fn a_run_of_capacity_429s_closes_flex_and_one_probe_goes_per_step() {
    let mut s = settings();
    s.flex.close_after = 3;
    let m = model(s);
    for _ in 0..3 {
        go(m, flex(600.0, 120.0)).await.report(capacity(None), None, Duration::ZERO);
    }
    assert!(m.snapshot().flex_closed);
    let start = Instant::now();
    let far = tokio::spawn(m.admit(flex(600.0, 60.0)));
    assert!(pending(&far).await);
    let near = tokio::spawn(m.admit(flex(300.0, 60.0)));
    assert!(pending(&near).await);
    // One probe after the first step, taken by the waiter that waited longest.
    let probe = match far.await.unwrap().admit {
        Admit::Go(p) => p,
        other => panic!("{other:?}"),
    };
    assert!(probe.is_probe());
    assert_eq!(Instant::now() - start, secs(1.0));
    assert!(pending(&near).await);
    // Refused with a retry-after longer than the step: honoured.
    probe.report(capacity(Some(7.0)), None, Duration::ZERO);
    let at = Instant::now();
    let probe = match near.await.unwrap().admit {
        Admit::Go(p) => p,
        other => panic!("{other:?}"),
    };
    assert_eq!(Instant::now() - at, secs(7.0));
    assert!(probe.is_probe());
    // Success reopens flex, starting small, and forgets the refusals that closed it.
    probe.report(Answered::Success, None, Duration::ZERO);
    let snap = m.snapshot();
    assert!(!snap.flex_closed);
    assert_eq!(snap.flex_limit, s.flex.min_limit);
    assert!(m.state.lock().flex.reject_probability(Instant::now()) < 1e-12);
}

#[tokio::test(start_paused = true)]
async fn waiters_go_in_latest_safe_start_order_and_escalate_at_it() {
    let mut s = settings();
    s.flex.initial_limit = 1;
    s.flex.max_limit = 1;
    let m = model(s);
    let held = go(m, flex(600.0, 120.0)).await;
    let start = Instant::now();
    let late = tokio::spawn(m.admit(flex(900.0, 120.0)));
    assert!(pending(&late).await);
    let early = tokio::spawn(m.admit(flex(300.0, 120.0)));
    assert!(pending(&early).await);
    let soon = tokio::spawn(m.admit(flex(30.0, 20.0)));
    assert!(pending(&soon).await);
    assert_eq!(m.snapshot().queued, 3);
    // `soon` cannot start flex after 10 s: it moves to standard exactly then.
    assert!(matches!(soon.await.unwrap().admit, Admit::Escalate));
    assert_eq!(Instant::now() - start, secs(10.0));
    // A free slot goes to the earliest latest-safe-start, not the first to arrive.
    held.report(Answered::Success, None, Duration::ZERO);
    let got = early.await.unwrap();
    assert!(matches!(got.admit, Admit::Go(_)));
    assert_eq!(got.why, Some(WaitReason::FlexLimit));
    assert!(pending(&late).await);
    drop(got);
    assert!(matches!(late.await.unwrap().admit, Admit::Go(_)));
}

#[tokio::test(start_paused = true)]
async fn a_flex_request_that_may_not_escalate_waits_until_its_deadline() {
    let mut s = settings();
    s.flex.close_after = 1;
    s.flex.probe_base = secs(100.0);
    s.flex.probe_max = secs(100.0);
    let m = model(s);
    go(m, flex(600.0, 120.0)).await.report(capacity(None), None, Duration::ZERO);
    let mut ask = flex(30.0, 0.0);
    ask.may_escalate = false;
    ask.escalate_at = ask.deadline;
    let start = Instant::now();
    assert!(matches!(m.admit(ask).await.admit, Admit::Expired));
    assert_eq!(Instant::now() - start, secs(30.0));
}

#[tokio::test(start_paused = true)]
async fn a_dropped_waiter_leaves_the_queue_at_once() {
    let mut s = settings();
    s.flex.initial_limit = 1;
    s.flex.max_limit = 1;
    let m = model(s);
    let held = go(m, flex(600.0, 120.0)).await;
    let first = tokio::spawn(m.admit(flex(300.0, 120.0)));
    assert!(pending(&first).await);
    let second = tokio::spawn(m.admit(flex(400.0, 120.0)));
    assert!(pending(&second).await);
    assert_eq!(m.snapshot().queued, 2);
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    assert_eq!(m.snapshot().queued, 1);
    drop(held);
    let got = second.await.unwrap();
    assert!(matches!(got.admit, Admit::Go(_)));
    assert_eq!(m.snapshot().flex_in_flight, 1);
}

#[tokio::test(start_paused = true)]
async fn a_rate_limit_429_makes_every_request_wait_once_and_releases_them_in_turn() {
    let m = model(settings());
    // 10 requests a window that refills in 10 s: one a second.
    let p = go(m, standard(true)).await;
    let mut answer = limits("10", "0", "10s");
    answer.insert("retry-after", "1".parse().unwrap());
    p.report(Answered::RateLimited { hint: Some(secs(1.0)) }, Some(&answer), Duration::ZERO);
    let start = Instant::now();
    let tasks: Vec<_> = (0..3)
        .map(|_| {
            tokio::spawn(async move {
                let got = m.admit(standard(true)).await;
                (Instant::now(), got.why)
            })
        })
        .collect();
    let mut times = Vec::new();
    for t in tasks {
        let (at, why) = t.await.unwrap();
        assert_eq!(why, Some(WaitReason::RateLimit));
        times.push((at - start).as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    // Nobody before the reset, then one per refilled request, not all at once.
    assert!(times[0] >= 1.0, "{times:?}");
    assert!(times[1] >= times[0] + 0.9 && times[2] >= times[1] + 0.9, "{times:?}");
}

#[tokio::test(start_paused = true)]
async fn background_work_leaves_the_headroom_to_urgent_requests() {
    let m = model(settings());
    // 3 of 10 free, refilling one a second: background needs 20 % (2) plus its own.
    go(m, standard(true)).await.report(Answered::Success, Some(&limits("10", "3", "7s")), Duration::ZERO);
    let start = Instant::now();
    let mut background = standard(false);
    background.tier = Some(Tier::Flex);
    go(m, background).await;
    let waiter = tokio::spawn(m.admit(background));
    assert!(pending(&waiter).await);
    // An urgent request is not queued behind it.
    let urgent = m.admit(standard(true)).await;
    assert!(matches!(urgent.admit, Admit::Go(_)));
    assert_eq!(urgent.waited, Duration::ZERO);
    let got = waiter.await.unwrap();
    assert_eq!(got.why, Some(WaitReason::Headroom));
    assert!(Instant::now() - start >= secs(1.0));
}

#[tokio::test(start_paused = true)]
async fn nonsense_rate_limit_headers_are_counted_and_never_stall() {
    let m = model(settings());
    let bad = [
        limits("-5", "1", "1s"),
        limits("abc", "1", "1s"),
        limits("10", "11", "1s"),
        limits("1e20", "1", "1s"),
        limits("10", "0", "99999999h"),
        limits("10", "0", "soon"),
        headers(&[("x-ratelimit-remaining-tokens", "NaN")]),
    ];
    for h in &bad {
        let got = go(m, standard(false)).await.report(Answered::Success, Some(h), Duration::ZERO);
        assert_eq!(got.bad_headers, 1, "{h:?}");
    }
    let none = go(m, standard(false)).await.report(Answered::Success, Some(&HeaderMap::new()), Duration::ZERO);
    assert_eq!(none.bad_headers, 0);
    assert_eq!(m.snapshot().bad_headers, bad.len() as u64);
    // Nothing usable was learned: background still goes at once.
    assert_eq!(m.admit(standard(false)).await.waited, Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn retries_are_capped_by_the_budget() {
    let mut s = settings();
    s.budget = BudgetSettings { ratio: 0.2, floor_per_sec: 0.1, window: secs(10.0) };
    let m = model(s);
    for _ in 0..10 {
        go(m, standard(true)).await.report(Answered::Success, None, Duration::ZERO);
    }
    // 0.2 × 10 first attempts + 0.1/s × 10 s = 3 retries.
    for _ in 0..3 {
        assert!(m.try_retry(Instant::now()).is_ok());
    }
    let wait = m.try_retry(Instant::now()).unwrap_err();
    assert!(wait > Duration::ZERO && wait <= secs(10.0));
    // The window slides: the retries are forgotten, the floor remains.
    tokio::time::advance(secs(20.0)).await;
    assert!(m.try_retry(Instant::now()).is_ok());
}

#[tokio::test(start_paused = true)]
async fn draining_moves_flex_waiters_to_standard() {
    let mut s = settings();
    s.flex.initial_limit = 1;
    s.flex.max_limit = 1;
    let m = model(s);
    let _held = go(m, flex(600.0, 120.0)).await;
    let waiter = tokio::spawn(m.admit(flex(600.0, 120.0)));
    assert!(pending(&waiter).await);
    m.drain(Instant::now() + secs(30.0));
    assert!(matches!(waiter.await.unwrap().admit, Admit::Escalate));
}

#[test]
fn models_outside_the_price_table_share_other() {
    let a = Admission::new(Settings::default(), ["gpt-5", "gpt-5-mini"], None);
    assert_eq!(a.model("gpt-5").name(), "gpt-5");
    assert_eq!(a.model("made-up").name(), "other");
    assert_eq!(a.all().count(), 3);
}

#[tokio::test(start_paused = true)]
async fn attempts_still_in_flight_are_not_refusals() {
    let m = model(settings());
    // Flex attempts last minutes: a burst of them, unanswered, must not throttle the next.
    let _held: Vec<_> = futures_util::future::join_all((0..7).map(|_| go(m, flex(600.0, 120.0)))).await;
    let next = m.admit(flex(600.0, 120.0)).await;
    assert!(matches!(next.admit, Admit::Go(_)));
    assert_eq!(next.waited, Duration::ZERO);
}

#[test]
fn a_due_probe_goes_to_the_first_in_line_and_the_others_wait_for_it_without_spinning() {
    let now = Instant::now();
    let mut f = Flex::new(settings().flex, now);
    for _ in 0..settings().flex.close_after {
        f.sent(false, now);
        f.answered(false, FlexResult::Capacity { hint: None }, now);
    }
    assert!(f.is_closed());
    let due = now + secs(3600.0);
    // Not "look again now": a waiter that did would spin until the first in line went.
    assert_eq!(f.gate(due, || 0.0, false), FlexGate::WaitUntil(None));
    assert_eq!(f.gate(due, || 0.0, true), FlexGate::Go { probe: true });
}

#[test]
fn a_closed_flex_is_probed_while_the_first_waiter_can_still_use_it() {
    let mut s = settings().flex;
    s.close_after = 1;
    s.probe_max = secs(64.0);
    let mut now = Instant::now();
    let mut f = Flex::new(s, now);
    f.sent(false, now);
    f.answered(false, FlexResult::Capacity { hint: None }, now);
    // Five refused probes: the doubling hold-off reaches 32 s.
    for _ in 0..5 {
        let FlexGate::WaitUntil(Some(at)) = f.gate(now, || 0.0, true) else { panic!("closed") };
        now = at;
        assert_eq!(f.gate(now, || 0.0, true), FlexGate::Go { probe: true });
        f.sent(true, now);
        f.answered(true, FlexResult::Capacity { hint: None }, now);
    }
    assert_eq!(f.gate(now, || 0.0, true), FlexGate::WaitUntil(Some(now + secs(32.0))));
    // The first waiter must move to standard in 20 s: the next probe comes halfway there.
    f.probe_by(now + secs(20.0), now);
    assert_eq!(f.gate(now, || 0.0, true), FlexGate::WaitUntil(Some(now + secs(10.0))));
    // A waiter with less than two base steps left pulls nothing, and no probe comes before
    // the upstream's retry-after.
    f.probe_by(now + secs(1.5), now);
    assert_eq!(f.gate(now, || 0.0, true), FlexGate::WaitUntil(Some(now + secs(10.0))));
    let now = now + secs(10.0);
    f.sent(true, now);
    f.answered(true, FlexResult::Capacity { hint: Some(secs(50.0)) }, now);
    assert_eq!(f.gate(now, || 0.0, true), FlexGate::WaitUntil(Some(now + secs(64.0))));
    f.probe_by(now + secs(20.0), now);
    assert_eq!(f.gate(now, || 0.0, true), FlexGate::WaitUntil(Some(now + secs(50.0))));
}

mod peers;
