//! The admission controllers' notes between replicas: one task sends this replica's
//! (`crate::admission::Note`) to Redis, one listens for the others'.
//!
//! A note is published on the upstream's channel and, for a late joiner, kept under a key
//! of its model while it holds (`…:MODEL:rate` until the wait ends, `…:MODEL:flex` while
//! flex is closed); a replica that subscribes, or subscribes again after Redis was away,
//! first reads those keys. Times cross the wire as Unix milliseconds: replicas on
//! different hosts share the wall clock, not their monotonic ones, and a few milliseconds
//! of skew are nothing against waits of seconds.
//!
//! Wire format, one line: `REPLICA MODEL KIND UNIX_MS STEP`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt as _;
use redis::aio::ConnectionManager;
use tokio::time::Instant;

use super::{CALL_TIMEOUT, RECONNECT, Shared};
use crate::admission::{Admission, Change, Note};

/// A subscription with no message for this long is pinged, so a Redis that went away
/// without closing the connection is noticed.
const PING_EVERY: Duration = Duration::from_secs(5);
/// A closed flex's key outlives its next probe by this much (the probe's answer, and
/// a replica that missed the reopening, are not left holding a stale closing forever).
const FLEX_KEY_MARGIN: Duration = Duration::from_secs(60);

/// Keep a note's state for late joiners (at most the longest wait) and publish it.
/// KEYS[1] the note's key; ARGV kind, the value kept (`UNIX_MS STEP`), when the key
/// expires (Unix ms), the channel, the message. A rate-limit wait is kept only when it
/// ends later than the one already kept.
const NOTE: &str = r"
if ARGV[1] == 'rate_limit' then
  local old = tonumber(string.match(redis.call('GET', KEYS[1]) or '0', '^%d+')) or 0
  if tonumber(string.match(ARGV[2], '^%d+')) > old then redis.call('SET', KEYS[1], ARGV[2], 'PXAT', ARGV[3]) end
elseif ARGV[1] == 'flex_closed' then
  redis.call('SET', KEYS[1], ARGV[2], 'PXAT', ARGV[3])
elseif ARGV[1] == 'flex_opened' then
  redis.call('DEL', KEYS[1])
end
return redis.call('PUBLISH', ARGV[4], ARGV[5])
";

/// Which way a note went (the metrics' `direction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Sent,
    Received,
}

/// Counts each note sent or heard (the metrics, in the gateway).
pub type Count<'a> = &'a (dyn Fn(Direction, Change) + Sync);

static NOTE_SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| redis::Script::new(NOTE));

/// The moment `at` in Unix milliseconds, given one moment read on both clocks.
fn unix_ms(at: Instant, now: Instant, wall: SystemTime) -> u64 {
    let wall = wall.duration_since(UNIX_EPOCH).unwrap_or_default();
    let at = if at >= now { wall + (at - now) } else { wall.saturating_sub(now - at) };
    u64::try_from(at.as_millis()).unwrap_or(u64::MAX)
}

/// Unix milliseconds as a moment of this process's clock (the past as `now`).
fn instant(ms: u64, now: Instant, wall: SystemTime) -> Instant {
    let wall = wall.duration_since(UNIX_EPOCH).unwrap_or_default();
    let ahead = Duration::from_millis(ms).saturating_sub(wall);
    // A note further ahead than a day is nonsense (the controller caps its waits anyway).
    now + ahead.min(Duration::from_secs(86_400))
}

/// One note as its line on the wire, its key's value and expiry.
fn encode(replica: &str, note: &Note, now: Instant, wall: SystemTime) -> (String, String, u64) {
    let (at, step) = match note.change {
        Change::RateLimited { until } => (unix_ms(until, now, wall), 0),
        Change::FlexClosed { next_probe, step } => (unix_ms(next_probe, now, wall), step),
        Change::FlexOpened | Change::FlexCut => (0, 0),
    };
    let line = format!("{replica} {} {} {at} {step}", note.model, note.change.kind());
    let expire = match note.change {
        Change::FlexClosed { .. } => at + u64::try_from(FLEX_KEY_MARGIN.as_millis()).unwrap_or(0),
        _ => at,
    };
    (line, format!("{at} {step}"), expire)
}

/// A line from the wire: who sent it, the model, the change. `None` for anything else.
fn decode(line: &str, now: Instant, wall: SystemTime) -> Option<(&str, &str, Change)> {
    let mut parts = line.split(' ');
    let (replica, model, kind) = (parts.next()?, parts.next()?, parts.next()?);
    let at: u64 = parts.next()?.parse().ok()?;
    let step: u32 = parts.next()?.parse().ok()?;
    if parts.next().is_some() {
        return None;
    }
    let change = match kind {
        "rate_limit" => Change::RateLimited { until: instant(at, now, wall) },
        "flex_closed" => Change::FlexClosed { next_probe: instant(at, now, wall), step },
        "flex_opened" => Change::FlexOpened,
        "flex_cut" => Change::FlexCut,
        _ => return None,
    };
    Some((replica, model, change))
}

fn key(namespace: &str, model: &str, change: Change) -> String {
    let what = if matches!(change, Change::RateLimited { .. }) { "rate" } else { "flex" };
    format!("{namespace}:{model}:{what}")
}

/// Send this replica's notes for as long as the gateway runs. A note that cannot be
/// sent (Redis away) is dropped: by the time Redis returns it is stale.
pub async fn send(shared: &Shared, count: Count<'_>, con: Option<ConnectionManager>) {
    let Some(mut notes) = shared.notes.lock().take() else {
        return;
    };
    let mut con = con;
    while let Some(note) = notes.recv().await {
        let c = match con.as_mut() {
            Some(c) => c,
            None => match tokio::time::timeout(CALL_TIMEOUT, super::connect(shared.url())).await {
                Ok(Ok(c)) => con.insert(c),
                _ => continue,
            },
        };
        let (now, wall) = (Instant::now(), SystemTime::now());
        let (line, value, expire) = encode(&shared.link.replica, &note, now, wall);
        if expire != 0 && expire <= unix_ms(now, now, wall) {
            continue; // it waited here past its end
        }
        let mut call = NOTE_SCRIPT.key(key(&shared.namespace, &note.model, note.change));
        call.arg(note.change.kind()).arg(value).arg(expire).arg(&shared.namespace).arg(line);
        match tokio::time::timeout(CALL_TIMEOUT, call.invoke_async::<i64>(c)).await {
            Ok(Ok(_)) => count(Direction::Sent, note.change),
            // Redis answered, with an error (a script Redis cannot run, say): it is up.
            Ok(Err(error)) if !error.is_io_error() && !error.is_timeout() && !error.is_connection_dropped() => {
                tracing::warn!(error = %error, "shared state: Redis refused an admission note");
            }
            Ok(Err(error)) => shared.link.set_up(false, &error),
            Err(_) => shared.link.set_up(false, &"a note to Redis timed out"),
        }
    }
}

/// Hear the other replicas' notes for as long as the gateway runs: subscribe, read the
/// state kept for late joiners, then take each note as it comes; again after Redis
/// was away.
pub async fn listen(shared: &Shared, admission: &Admission, count: Count<'_>) {
    loop {
        if let Err(error) = listen_once(shared, admission, count).await {
            tracing::debug!(error = %error, "shared state: admission notes interrupted");
        }
        tokio::time::sleep(RECONNECT).await;
    }
}

async fn listen_once(shared: &Shared, admission: &Admission, count: Count<'_>) -> redis::RedisResult<()> {
    let client = redis::Client::open(shared.url())?;
    let subscribe = async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(&shared.namespace).await?;
        Ok::<_, redis::RedisError>(pubsub)
    };
    let pubsub = tokio::time::timeout(CALL_TIMEOUT * 2, subscribe).await.map_err(|_| super::timed_out())??;
    catch_up(shared, admission, count, &client).await?;
    let (mut sink, mut stream) = pubsub.split();
    loop {
        let message = match tokio::time::timeout(PING_EVERY, stream.next()).await {
            Ok(Some(message)) => message,
            Ok(None) => return Ok(()),
            Err(_) => {
                let ping = tokio::time::timeout(CALL_TIMEOUT, sink.ping::<String>()).await;
                ping.map_err(|_| super::timed_out())??;
                continue;
            }
        };
        let line: String = message.get_payload()?;
        heard(shared, admission, count, &line);
    }
}

/// Read the state kept for late joiners: every model's rate-limit wait and closed flex.
async fn catch_up(
    shared: &Shared,
    admission: &Admission,
    count: Count<'_>,
    client: &redis::Client,
) -> redis::RedisResult<()> {
    let read = async {
        let mut con = client.get_multiplexed_async_connection().await?;
        let models: Vec<&str> = admission.all().map(crate::admission::Model::name).collect();
        let keys: Vec<String> = models
            .iter()
            .flat_map(|m| [format!("{}:{m}:rate", shared.namespace), format!("{}:{m}:flex", shared.namespace)])
            .collect();
        let values: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query_async(&mut con).await?;
        Ok::<_, redis::RedisError>((models, values))
    };
    let (models, values) = tokio::time::timeout(CALL_TIMEOUT * 2, read).await.map_err(|_| super::timed_out())??;
    for (model, pair) in models.iter().zip(values.chunks(2)) {
        for (kind, value) in ["rate_limit", "flex_closed"].into_iter().zip(pair) {
            if let Some(value) = value {
                // The kept value is `UNIX_MS STEP`: the same as a line's tail.
                heard(shared, admission, count, &format!("- {model} {kind} {value}"));
            }
        }
    }
    Ok(())
}

/// Take one line heard from the others (this replica's own are ignored).
fn heard(shared: &Shared, admission: &Admission, count: Count<'_>, line: &str) {
    let (now, wall) = (Instant::now(), SystemTime::now());
    let Some((replica, model, change)) = decode(line, now, wall) else {
        tracing::debug!(line, "shared state: an admission note not understood");
        return;
    };
    if replica == shared.link.replica {
        return;
    }
    if let Some(m) = admission.find(model) {
        m.heard(change, now);
        count(Direction::Received, change);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn moments_cross_the_wire_as_unix_milliseconds_both_ways() {
        let (now, wall) = (Instant::now(), UNIX_EPOCH + Duration::from_secs(1_800_000_000));
        let at = now + Duration::from_millis(2_500);
        assert_eq!(unix_ms(at, now, wall), 1_800_000_002_500);
        assert_eq!(instant(1_800_000_002_500, now, wall), at);
        // The past is now; a note from a clock far ahead waits at most a day.
        assert_eq!(instant(1_700_000_000_000, now, wall), now);
        assert_eq!(instant(u64::MAX, now, wall), now + Duration::from_secs(86_400));
    }

    #[test]
    fn a_note_is_one_line_and_reads_back_as_the_same_change() {
        let (now, wall) = (Instant::now(), UNIX_EPOCH + Duration::from_secs(1_800_000_000));
        let changes = [
            Change::RateLimited { until: now + Duration::from_secs(3) },
            Change::FlexClosed { next_probe: now + Duration::from_secs(8), step: 3 },
            Change::FlexOpened,
            Change::FlexCut,
        ];
        for change in changes {
            let note = Note { model: Arc::from("gpt-5-mini"), change };
            let (line, value, _) = encode("a1b2", &note, now, wall);
            assert_eq!(decode(&line, now, wall), Some(("a1b2", "gpt-5-mini", change)), "{line}");
            // The kept value is the line's tail.
            assert!(line.ends_with(&value), "{line} / {value}");
        }
        let (line, _, expire) = encode("a", &Note { model: Arc::from("m"), change: changes[0] }, now, wall);
        assert_eq!((line.as_str(), expire), ("a m rate_limit 1800000003000 0", 1_800_000_003_000));
    }

    #[test]
    fn lines_that_are_not_notes_are_refused() {
        let (now, wall) = (Instant::now(), SystemTime::now());
        for line in ["", "a b", "a m rate_limit x 0", "a m teleport 1 0", "a m flex_cut 0 0 extra", "a m flex_cut 0 -1"]
        {
            assert_eq!(decode(line, now, wall), None, "{line:?}");
        }
    }
}
