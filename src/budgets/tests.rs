use super::*;

/// 2026-12-07T15:50:00Z.
const NOW: u64 = 1_796_658_600;
const CENT: u64 = NANOS_PER_USD / 100;

fn limits(usd_cents: u64) -> BudgetLimits {
    BudgetLimits {
        client: "team-a".into(),
        limit: usd_cents * CENT,
        period: Period::Day,
        soft: None,
        on_soft: OnSoft::Nothing,
        fail: FailMode::Open,
        reserve: CENT,
    }
}

fn budgets(l: BudgetLimits) -> Budgets {
    Budgets::new(&[l])
}

fn admit(b: &Budgets, now: u64) -> Result<BudgetAdmission, GatewayError> {
    b.admit_at(Some("team-a"), Estimate::default, now).map(|a| a.expect("team-a is budgeted"))
}

#[test]
fn money_is_counted_in_whole_nano_dollars_rounded_up() {
    assert_eq!(nanos(Decimal::new(125, 2)), Some(1_250_000_000));
    assert_eq!(nanos(Decimal::new(1, 12)), Some(1));
    assert_eq!(nanos(Decimal::ZERO), Some(0));
    assert_eq!(nanos(Decimal::new(-1, 2)), None);
    assert_eq!(usd(1_250_000_000), "1.25");
    assert_eq!(usd(123), "0.000000123");
    assert_eq!(usd(0), "0");
    assert_eq!(usd(250 * NANOS_PER_USD), "250");
    assert_eq!(usd(100_000), "0.0001");
    assert_eq!(usd(1_000_000_001), "1.000000001");
    // The text is the exact decimal value, as `Decimal` writes it.
    for n in [1, 10, 999_999_999, 1_000_000_000, 12_345_678_901_234, u64::MAX] {
        let exact = (Decimal::from(n) / Decimal::from(NANOS_PER_USD)).normalize();
        assert_eq!(usd(n), exact.to_string(), "{n}");
    }
}

#[test]
fn admits_while_spend_stays_under_the_limit_then_refuses_until_the_reset() {
    let b = budgets(limits(10));
    // Each request costs 3 cents: the fourth crosses the limit (12 of 10), the fifth is refused.
    for _ in 0..4 {
        admit(&b, NOW).unwrap().reservation.settle(3 * CENT);
    }
    let refused = admit(&b, NOW).err().unwrap();
    let GatewayError::BudgetExceeded { message, retry_after, .. } = &refused else {
        panic!("{refused:?}");
    };
    assert_eq!(
        message,
        "Client `team-a` has used its budget: $0.12 spent and $0 held by requests in flight, of a $0.1 limit per \
         day. It resets at 2026-12-08T00:00:00Z."
    );
    assert_eq!(*retry_after, 8 * 3600 + 10 * 60);
    // The next day starts from zero.
    assert!(admit(&b, NOW + *retry_after).is_ok());
}

#[test]
fn requests_in_flight_hold_their_reservation() {
    let b = budgets(limits(3));
    let held: Vec<_> = (0..3).map(|_| admit(&b, NOW).unwrap()).collect();
    assert!(admit(&b, NOW).is_err(), "three reservations of a cent fill three cents");
    let client = b.iter().next().unwrap();
    assert_eq!(client.balance(NOW).reserved, 3 * CENT);
    drop(held);
    let balance = client.balance(NOW);
    assert_eq!((balance.spent, balance.reserved), (0, 0), "a request that died books nothing");
    assert!(admit(&b, NOW).is_ok());
}

#[test]
fn a_request_is_settled_once_and_its_drop_does_not_settle_again() {
    let b = budgets(limits(100));
    let a = admit(&b, NOW).unwrap();
    a.reservation.settle(7);
    let balance = b.iter().next().unwrap().balance(NOW);
    assert_eq!((balance.spent, balance.reserved), (7, 0));
}

fn estimated(cents: u64) -> impl FnOnce() -> Estimate {
    move || Estimate { cost: Some(cents * CENT), input_tokens: 40 }
}

#[test]
fn a_request_holds_its_estimate_and_is_refused_when_it_does_not_fit() {
    let b = budgets(limits(10));
    let client = b.iter().next().unwrap();
    let first = b.admit_at(Some("team-a"), estimated(6), NOW).unwrap().unwrap();
    assert_eq!(first.reservation.held(), 6 * CENT);
    assert_eq!(first.input_tokens, 40);
    assert_eq!(client.balance(NOW).reserved, 6 * CENT, "the estimate is held, not `reserve_usd`");
    let refused = b.admit_at(Some("team-a"), estimated(5), NOW).err().unwrap();
    let GatewayError::BudgetExceeded { message, .. } = &refused else {
        panic!("{refused:?}");
    };
    assert!(message.contains("This request may cost up to $0.05, more than the $0.04 left."), "{message}");
    // Four cents fit exactly.
    let second = b.admit_at(Some("team-a"), estimated(4), NOW).unwrap().unwrap();
    first.reservation.settle(CENT);
    drop(second);
    assert_eq!(client.balance(NOW).reserved, 0, "each reservation gives back what it held");
    assert_eq!(client.balance(NOW).spent, CENT);
    // A request estimated above the whole limit is refused on a fresh account too.
    let fresh = budgets(limits(10));
    assert!(fresh.admit_at(Some("team-a"), estimated(11), NOW).is_err());
    assert!(fresh.admit_at(Some("team-a"), estimated(10), NOW).is_ok());
}

#[test]
fn past_the_soft_limit_flex_only_applies() {
    let mut l = limits(100);
    l.soft = Some(50 * CENT);
    l.on_soft = OnSoft::FlexOnly;
    let b = budgets(l);
    let first = admit(&b, NOW).unwrap();
    assert!(!first.flex_only);
    first.reservation.settle(50 * CENT);
    assert!(admit(&b, NOW).unwrap().flex_only);
}

#[test]
fn clients_without_a_budget_pass_untouched() {
    let b = budgets(limits(1));
    assert!(b.admit_at(Some("team-b"), Estimate::default, NOW).unwrap().is_none());
    assert!(b.admit_at(None, Estimate::default, NOW).unwrap().is_none());
}

/// Under any interleaving of admissions and settlements, spend never passes the limit
/// by more than one request's overshoot when no request costs more than its reservation.
#[test]
fn concurrent_requests_overshoot_by_at_most_one_reservation() {
    let b = std::sync::Arc::new(budgets(limits(50)));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let b = std::sync::Arc::clone(&b);
            std::thread::spawn(move || {
                let mut admitted = 0;
                while let Ok(a) = admit(&b, NOW) {
                    std::thread::yield_now();
                    a.reservation.settle(CENT);
                    admitted += 1;
                }
                admitted
            })
        })
        .collect();
    let admitted: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    let spent = b.iter().next().unwrap().balance(NOW).spent;
    assert_eq!(spent, admitted * CENT);
    assert!((50 * CENT..=51 * CENT).contains(&spent), "spent {spent}");
}

/// Spend written by one gateway is what the next one starts from; a repeated write of
/// the same amount counts once, and an older, smaller amount never lowers it.
#[tokio::test]
async fn spend_is_written_behind_and_restored_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::store::Store::open_async(dir.path().to_path_buf()).await.unwrap();
    let first = Budgets::new(&[limits(10)]);
    first.admit(Some("team-a"), Estimate::default).unwrap().unwrap().reservation.settle(4 * CENT);
    persist::flush(&first, &store).await.unwrap();
    persist::flush(&first, &store).await.unwrap();

    let second = Budgets::new(&[limits(10)]);
    persist::restore(&second, &store).await.unwrap();
    let client = second.iter().next().unwrap();
    assert_eq!(client.balance(now_secs()).spent, 4 * CENT);
    second.admit(Some("team-a"), Estimate::default).unwrap().unwrap().reservation.settle(6 * CENT);
    persist::flush(&second, &store).await.unwrap();
    let refused = second.admit(Some("team-a"), Estimate::default).err().expect("ten cents of ten spent");
    assert!(refused.to_string().contains("$0.1 spent"), "{refused}");

    // A stale writer with less spend does not lower the stored amount.
    first.admit(Some("team-a"), Estimate::default).unwrap().unwrap().reservation.settle(1);
    persist::flush(&first, &store).await.unwrap();
    let third = Budgets::new(&[limits(10)]);
    persist::restore(&third, &store).await.unwrap();
    assert_eq!(third.iter().next().unwrap().balance(now_secs()).spent, 10 * CENT);
}

/// The spend a fresh gateway would restore from `store`.
async fn stored(store: &crate::store::Store) -> u64 {
    let fresh = Budgets::new(&[limits(10)]);
    persist::restore(&fresh, store).await.unwrap();
    fresh.iter().next().unwrap().balance(now_secs()).spent
}

/// A busy client settles thousands of requests a second: the writer takes what was
/// settled since its last write in one write, at most once per `WRITE_EVERY`, instead of
/// one write per settle. Time is paused: it moves only when every task waits (never
/// while a write is on the blocking pool), so what the store holds at each step is exact.
#[tokio::test(start_paused = true)]
async fn the_writer_writes_at_most_once_per_interval() {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::store::Store::open_async(dir.path().to_path_buf()).await.unwrap();
    let budgets = Arc::new(Budgets::new(&[limits(10)]));
    let writer = tokio::spawn(persist::write_behind(Arc::clone(&budgets), store.clone()));
    let settle = |cost| budgets.admit(Some("team-a"), Estimate::default).unwrap().unwrap().reservation.settle(cost);

    // The first settle is written at once.
    settle(CENT);
    tokio::time::sleep(persist::WRITE_EVERY / 10).await;
    assert_eq!(stored(&store).await, CENT);
    // Settles within the interval wait for its end, then go in one write.
    settle(2 * CENT);
    settle(3 * CENT);
    tokio::time::sleep(persist::WRITE_EVERY / 2).await;
    assert_eq!(stored(&store).await, CENT, "written before the interval ended");
    tokio::time::sleep(persist::WRITE_EVERY / 2).await;
    assert_eq!(stored(&store).await, 6 * CENT);
    writer.abort();
}
