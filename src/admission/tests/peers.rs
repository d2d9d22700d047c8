//! Replicas telling each other: what one model learns from the upstream reaches its
//! outbox once, and another model that hears it behaves as if it had learned it itself.

use tokio::sync::mpsc;

use super::*;

/// A model whose notes land in the returned receiver.
fn replica(s: Settings) -> (&'static Model, mpsc::Receiver<Note>) {
    let (tx, rx) = mpsc::channel(16);
    (leak(Model { outbox: Some(tx), ..Model::with_coin("m", s, || 0.5) }), rx)
}

fn notes(rx: &mut mpsc::Receiver<Note>) -> Vec<Change> {
    std::iter::from_fn(|| rx.try_recv().ok()).map(|n| n.change).collect()
}

#[tokio::test(start_paused = true)]
async fn a_rate_limit_wait_learned_by_one_replica_holds_the_other() {
    let (a, mut a_notes) = replica(settings());
    let (b, mut b_notes) = replica(settings());
    let mut burst = Vec::new();
    for _ in 0..4 {
        burst.push(go(a, standard(true)).await);
    }
    let start = Instant::now();
    // A burst of 429s answered together is one wait: told once.
    for p in burst {
        p.report(Answered::RateLimited { hint: Some(secs(5.0)) }, Some(&limits("10", "0", "30s")), Duration::ZERO);
    }
    let told = notes(&mut a_notes);
    assert_eq!(told, [Change::RateLimited { until: start + secs(5.0) }]);

    b.heard(told[0], Instant::now());
    let got = b.admit(standard(true)).await;
    assert!(matches!(got.admit, Admit::Go(_)));
    assert_eq!((got.waited, got.why), (secs(5.0), Some(WaitReason::RateLimit)));
    // What a replica heard, it does not tell again: no echo between replicas.
    assert!(notes(&mut b_notes).is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_429_that_the_limit_does_not_explain_is_not_told() {
    let (a, mut a_notes) = replica(settings());
    // Plenty of requests left: a refusal of this request alone, not the model's wait.
    let p = go(a, standard(true)).await;
    p.report(Answered::RateLimited { hint: Some(secs(5.0)) }, Some(&limits("10", "9", "1s")), Duration::ZERO);
    assert!(notes(&mut a_notes).is_empty());
}

/// Two replicas, A having just closed flex after three refusals; A's notes so far.
async fn closed_on_a() -> (Settings, &'static Model, Vec<Change>, &'static Model, mpsc::Receiver<Note>) {
    let mut s = settings();
    s.flex.close_after = 3;
    let (a, mut a_notes) = replica(s);
    let (b, _) = replica(s);
    for _ in 0..3 {
        go(a, flex(600.0, 120.0)).await.report(capacity(None), None, Duration::ZERO);
    }
    (s, a, notes(&mut a_notes), b, a_notes)
}

#[tokio::test(start_paused = true)]
async fn flex_closed_by_one_replica_is_closed_on_the_other_until_after_the_first_probe() {
    let (s, _, told, b, _) = closed_on_a().await;
    let start = Instant::now();
    let closed = Change::FlexClosed { next_probe: start + s.flex.probe_base, step: 0 };
    assert_eq!(told.last(), Some(&closed), "{told:?}");
    b.heard(closed, start);
    assert!(b.snapshot().flex_closed);

    // B's first flex request sends nothing to the closed flex: it waits, and B's probe
    // comes one base step after A's (A probes first; B probes only if it hears nothing).
    let waiter = tokio::spawn(b.admit(flex(600.0, 60.0)));
    assert!(pending(&waiter).await);
    let got = waiter.await.unwrap();
    assert_eq!((got.waited, got.why), (s.flex.probe_base * 2, Some(WaitReason::FlexClosed)));
    assert!(matches!(got.admit, Admit::Go(ref p) if p.is_probe()));
}

#[tokio::test(start_paused = true)]
async fn a_probe_accepted_by_one_replica_reopens_flex_on_the_other() {
    let (s, a, mut told, b, mut a_notes) = closed_on_a().await;
    b.heard(told.pop().unwrap(), Instant::now());
    let waiter = tokio::spawn(b.admit(flex(600.0, 60.0)));
    assert!(pending(&waiter).await);

    // A's probe goes after one step and is accepted: B's waiter goes at once, as an
    // ordinary attempt, before B's own probe would have.
    let probe = go(a, flex(600.0, 60.0)).await;
    assert!(probe.is_probe());
    let at = Instant::now();
    probe.report(Answered::Success, None, Duration::ZERO);
    let told = notes(&mut a_notes);
    assert_eq!(told, [Change::FlexOpened]);
    b.heard(told[0], at);
    let got = waiter.await.unwrap();
    assert!(matches!(got.admit, Admit::Go(ref p) if !p.is_probe()));
    assert_eq!(Instant::now(), at);
    assert!(!b.snapshot().flex_closed);
    assert_eq!(b.snapshot().flex_limit, s.flex.min_limit, "reopened small, as after its own probe");
}

#[tokio::test(start_paused = true)]
async fn a_congestion_cut_heard_cuts_once_per_interval() {
    let mut s = settings();
    s.flex.backoff_ratio = 0.5;
    let (b, _) = replica(s);
    let now = Instant::now();
    b.heard(Change::FlexCut, now);
    assert_eq!(b.snapshot().flex_limit, 4);
    b.heard(Change::FlexCut, now + s.flex.cut_interval / 2);
    assert_eq!(b.snapshot().flex_limit, 4, "two cuts within one interval are one congestion");
    b.heard(Change::FlexCut, now + s.flex.cut_interval);
    assert_eq!(b.snapshot().flex_limit, 2);
}

#[tokio::test(start_paused = true)]
async fn waits_that_already_ended_are_ignored() {
    let (b, _) = replica(settings());
    let now = Instant::now();
    b.heard(Change::RateLimited { until: now }, now);
    b.heard(Change::FlexClosed { next_probe: now - settings().flex.probe_base, step: 2 }, now);
    let snap = b.snapshot();
    assert!(!snap.flex_closed);
    assert!(matches!(b.admit(standard(false)).await, Admitted { admit: Admit::Go(_), why: None, .. }));
}

#[test]
fn a_note_for_a_model_this_replica_does_not_price_is_not_others_news() {
    let a = Admission::new(Settings::default(), ["gpt-5"], None);
    assert_eq!(a.find("gpt-5").map(Model::name), Some("gpt-5"));
    assert_eq!(a.find("other").map(Model::name), Some("other"));
    assert!(a.find("gpt-9-unknown").is_none());
}
