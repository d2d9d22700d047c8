//! The relay of one upgraded session: bytes both ways unchanged, the upstream's read by a
//! passive [`FrameReader`] on the way, until one side closes, the session goes idle or
//! outlives its maximum, or a shutdown's drain time is over.
//!
//! Only the upstream→client direction is parsed for usage (the client's frames are only
//! followed for their boundaries). Buffers are fixed (a frame of any size crosses in
//! pieces); only a text message that may carry usage is held, up to
//! [`super::frames::MESSAGE_CAP`]. When flexgate ends a session itself it sends each side
//! a close frame (1000 when idle, 1001 on a shutdown or at the maximum lifetime, which
//! clients such as openai-node treat as a reason to reconnect), but only to a side whose
//! stream is between two frames: a close frame inside another frame would corrupt it, so
//! then that connection is just closed.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::frames::FrameReader;

/// Each direction's buffer, held for the session's whole life: most of an idle
/// session's memory (1,000 idle sessions took 34 KiB each with 16 KiB buffers, 22 KiB with these). A
/// frame of megabytes crosses in pieces of this size, as with `copy_bidirectional`.
const BUFFER: usize = 8 * 1024;
/// Time allowed to write flexgate's close frame to a client before giving up on it.
const CLOSE_WRITE: Duration = Duration::from_secs(1);

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// One side closed its socket (the other was told, by a shutdown of its write side).
    Closed,
    /// A socket failed.
    Error,
    Idle,
    Lifetime,
    Shutdown,
}

impl End {
    pub fn as_str(self) -> &'static str {
        match self {
            End::Closed => "closed",
            End::Error => "error",
            End::Idle => "idle_timeout",
            End::Lifetime => "max_lifetime",
            End::Shutdown => "shutdown",
        }
    }

    /// The close code flexgate sends the client when it ends the session itself.
    fn close_code(self) -> Option<u16> {
        match self {
            End::Idle => Some(1000),
            End::Lifetime | End::Shutdown => Some(1001),
            End::Closed | End::Error => None,
        }
    }
}

/// What the relay found, for the session's log line.
#[derive(Debug, Default)]
pub struct Totals {
    pub to_upstream: u64,
    pub to_client: u64,
    /// The close code of the upstream's close frame, if one crossed.
    pub upstream_close: Option<u16>,
    /// Text messages relayed unread (over the cap or compressed).
    pub unread: u64,
}

/// The bounds of one session.
pub struct Limits {
    pub idle: Duration,
    pub lifetime: Duration,
}

/// Shared by the two directions (one task, so plain atomics suffice).
struct Activity {
    start: Instant,
    /// Nanoseconds from `start` to the last byte in either direction.
    last: AtomicU64,
    /// The client's stream is between two frames and no write to it is under way.
    client_clean: AtomicBool,
    /// The same for the upstream's stream.
    upstream_clean: AtomicBool,
}

impl Activity {
    fn touch(&self) {
        let nanos = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last.store(nanos, Ordering::Relaxed);
    }

    /// Resolves once nothing has crossed for `idle`.
    async fn idle(&self, idle: Duration) {
        loop {
            let at = self.start + Duration::from_nanos(self.last.load(Ordering::Relaxed)) + idle;
            if Instant::now() >= at {
                return;
            }
            tokio::time::sleep_until(at).await;
        }
    }
}

/// Relay until the session ends; `on_message` gets each upstream text message that may
/// carry usage. `stop` resolves when the session must end for a shutdown.
pub async fn run<C, U>(
    client: C,
    upstream: U,
    limits: &Limits,
    stop: impl Future<Output = ()>,
    mut on_message: impl FnMut(&[u8]),
) -> (End, Totals)
where
    C: AsyncRead + AsyncWrite,
    U: AsyncRead + AsyncWrite,
{
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let (mut upstream_read, mut upstream_write) = tokio::io::split(upstream);
    let activity = Activity {
        start: Instant::now(),
        last: AtomicU64::new(0),
        client_clean: AtomicBool::new(true),
        upstream_clean: AtomicBool::new(true),
    };
    let mut reader = FrameReader::default();
    // The client's frames are only followed for their boundaries (nothing is read from
    // them), so that a close frame of flexgate's own can be sent upstream too.
    let mut client_frames = FrameReader::default();
    let (mut to_client, mut to_upstream) = (0_u64, 0_u64);
    let end = {
        let down = async {
            let mut buffer = vec![0; BUFFER];
            loop {
                let n = upstream_read.read(&mut buffer).await?;
                if n == 0 {
                    client_write.shutdown().await?;
                    return Ok::<_, std::io::Error>(());
                }
                activity.touch();
                reader.feed(&buffer[..n], &mut on_message);
                activity.client_clean.store(false, Ordering::Relaxed);
                client_write.write_all(&buffer[..n]).await?;
                activity.client_clean.store(reader.at_boundary(), Ordering::Relaxed);
                to_client += n as u64;
            }
        };
        let up = async {
            let mut buffer = vec![0; BUFFER];
            loop {
                let n = client_read.read(&mut buffer).await?;
                if n == 0 {
                    upstream_write.shutdown().await?;
                    return Ok::<_, std::io::Error>(());
                }
                activity.touch();
                client_frames.feed(&buffer[..n], &mut |_| {});
                activity.upstream_clean.store(false, Ordering::Relaxed);
                upstream_write.write_all(&buffer[..n]).await?;
                activity.upstream_clean.store(client_frames.at_boundary(), Ordering::Relaxed);
                to_upstream += n as u64;
            }
        };
        tokio::select! {
            // The first side to close ends the session: once one socket is gone nothing
            // more can be exchanged, and a client that keeps its socket open after the
            // upstream hung up would otherwise hold the session until the idle timeout.
            relayed = down => if relayed.is_ok() { End::Closed } else { End::Error },
            relayed = up => if relayed.is_ok() { End::Closed } else { End::Error },
            () = activity.idle(limits.idle) => End::Idle,
            () = tokio::time::sleep(limits.lifetime) => End::Lifetime,
            () = stop => End::Shutdown,
        }
    };
    let totals = Totals { to_upstream, to_client, upstream_close: reader.close_code, unread: reader.unread };
    if let Some(code) = end.close_code() {
        if activity.client_clean.load(Ordering::Relaxed) {
            let [hi, lo] = code.to_be_bytes();
            // FIN + close, unmasked (a server's frame), two bytes of payload: the code.
            let frame = [0x88, 0x02, hi, lo];
            let _ = tokio::time::timeout(CLOSE_WRITE, async {
                client_write.write_all(&frame).await?;
                client_write.shutdown().await
            })
            .await;
        }
        if activity.upstream_clean.load(Ordering::Relaxed) {
            // A client's frame is masked (RFC 6455 §5.3), with a key of its own.
            let [hi, lo] = code.to_be_bytes();
            let mask: [u8; 4] = rand::random();
            let frame = [0x88, 0x82, mask[0], mask[1], mask[2], mask[3], hi ^ mask[0], lo ^ mask[1]];
            let _ = tokio::time::timeout(CLOSE_WRITE, upstream_write.write_all(&frame)).await;
        }
        let _ = tokio::time::timeout(CLOSE_WRITE, upstream_write.shutdown()).await;
    }
    (end, totals)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The relay on in-memory pipes: bytes cross unchanged both ways.
    #[tokio::test(start_paused = true)]
    async fn an_idle_session_is_closed_with_1000() {
        let (client, mut client_far) = tokio::io::duplex(1024);
        let (upstream, mut upstream_far) = tokio::io::duplex(1024);
        let limits = Limits { idle: Duration::from_secs(60), lifetime: Duration::from_secs(3600) };
        let relay = tokio::spawn(async move { run(client, upstream, &limits, std::future::pending(), |_| {}).await });
        // A text frame down and some bytes up, then silence.
        let frame = [0x81, 0x02, b'h', b'i'];
        upstream_far.write_all(&frame).await.unwrap();
        let mut got = [0; 4];
        client_far.read_exact(&mut got).await.unwrap();
        assert_eq!(got, frame);
        client_far.write_all(b"abc").await.unwrap();
        let mut up = [0; 3];
        upstream_far.read_exact(&mut up).await.unwrap();
        assert_eq!(&up, b"abc");
        let (end, totals) = relay.await.unwrap();
        assert_eq!(end, End::Idle);
        assert_eq!((totals.to_client, totals.to_upstream), (4, 3));
        // "abc" is no whole frame: the upstream gets no close frame inside it.
        let mut rest = Vec::new();
        upstream_far.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty(), "{rest:?}");
        let mut close = Vec::new();
        client_far.read_to_end(&mut close).await.unwrap();
        assert_eq!(close, [0x88, 0x02, 0x03, 0xe8]);
    }

    #[tokio::test(start_paused = true)]
    async fn no_close_frame_is_written_inside_a_frame() {
        let (client, mut client_far) = tokio::io::duplex(1024);
        let (upstream, mut upstream_far) = tokio::io::duplex(1024);
        let limits = Limits { idle: Duration::from_secs(3600), lifetime: Duration::from_secs(30) };
        let relay = tokio::spawn(async move { run(client, upstream, &limits, std::future::pending(), |_| {}).await });
        // Half a frame: 10 bytes announced, 2 sent.
        upstream_far.write_all(&[0x81, 0x0a, b'h', b'i']).await.unwrap();
        let (end, _) = relay.await.unwrap();
        assert_eq!(end, End::Lifetime);
        let mut rest = Vec::new();
        client_far.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, [0x81, 0x0a, b'h', b'i']);
    }

    #[tokio::test(start_paused = true)]
    async fn a_shutdown_closes_both_sides_with_1001() {
        let (client, mut client_far) = tokio::io::duplex(1024);
        let (upstream, mut upstream_far) = tokio::io::duplex(1024);
        let limits = Limits { idle: Duration::from_secs(3600), lifetime: Duration::from_secs(7200) };
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let stop = async move {
            let _ = stop_rx.await;
        };
        let relay = tokio::spawn(async move { run(client, upstream, &limits, stop, |_| {}).await });
        // A whole masked frame up ("hi"), then the shutdown.
        let up = [0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2];
        client_far.write_all(&up).await.unwrap();
        let mut got = [0; 8];
        upstream_far.read_exact(&mut got).await.unwrap();
        stop_tx.send(()).unwrap();
        assert_eq!(relay.await.unwrap().0, End::Shutdown);
        let mut to_client = Vec::new();
        client_far.read_to_end(&mut to_client).await.unwrap();
        assert_eq!(to_client, [0x88, 0x02, 0x03, 0xe9]);
        let mut to_upstream = Vec::new();
        upstream_far.read_to_end(&mut to_upstream).await.unwrap();
        assert_eq!(to_upstream.len(), 8);
        assert_eq!(&to_upstream[..2], &[0x88, 0x82]);
        let mask = &to_upstream[2..6];
        assert_eq!([to_upstream[6] ^ mask[0], to_upstream[7] ^ mask[1]], [0x03, 0xe9]);
    }
}
