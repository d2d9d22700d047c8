//! A passive WebSocket frame reader for the upstream→client direction: it is shown every
//! relayed byte, in whatever pieces the socket delivers them, and never changes one.
//!
//! It tracks frame boundaries (so the relay knows when a close frame of its own can be
//! written to the client without cutting a frame in two) and reassembles text messages,
//! fragmented or not, up to a cap, handing the caller each complete one whose top-level
//! `type` is one usage is read from. Other messages are dropped as soon as their first
//! bytes show their type, so a stream of audio deltas is never held; one whose type comes
//! later (the order of keys is not promised) is held and its type found at its end, so
//! only metered events are ever parsed. Binary frames, messages over the cap and
//! compressed (RSV1) messages are passed over without buffering.
//!
//! Every event crosses this reader, so it is built to be cheap per message: a message that
//! arrives in one piece (most do) is read where it is, the buffer for the others is
//! reused, strings are skipped with `memchr`, and each byte is scanned at most twice.

/// The largest text message reassembled for reading. Events that carry usage hold a
/// response's output text, rarely more than some hundred KiB; bigger ones are relayed
/// unread.
pub const MESSAGE_CAP: usize = 4 << 20;

/// Bytes of a message looked at for its `type` before deciding to keep it.
const SNIFF: usize = 256;

/// Capacity of the message buffer kept between messages: enough for most events, small
/// beside an idle session's relay buffers; a larger one is freed once its message is read.
const RETAIN: usize = 1024;

/// Event types that carry usage (`crate::websocket::usage`).
pub const METERED_TYPES: [&str; 5] = [
    "response.done",
    "response.completed",
    "response.incomplete",
    "response.failed",
    "conversation.item.input_audio_transcription.completed",
];

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_CLOSE: u8 = 0x8;

/// What is known of the text message being read.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Held {
    /// Not held: no text message, or one that carries no usage or cannot be read.
    #[default]
    No,
    /// Held, its top-level `type` not in sight in its first this many bytes.
    Untyped(usize),
    /// Held, its `type` one usage is read from.
    Metered,
}

#[derive(Debug, Default)]
pub struct FrameReader {
    /// Header bytes of the frame being read (at most 14).
    header: [u8; 14],
    have: usize,
    /// Payload bytes left in the current frame; `None` while reading a header.
    remaining: Option<u64>,
    /// Opcode and FIN of the current frame.
    opcode: u8,
    fin: bool,
    masked: bool,
    /// The text message being reassembled while it is held (reused between messages).
    message: Vec<u8>,
    held: Held,
    /// Inside a fragmented text message (continuation frames belong to it).
    in_text: bool,
    /// The payload of a close frame, for its code.
    close: Vec<u8>,
    /// The close code the upstream sent, once its close frame is complete.
    pub close_code: Option<u16>,
    /// Text messages relayed unread: over the cap or compressed.
    pub unread: u64,
}

impl FrameReader {
    /// Between two frames: the client's stream can take a frame of the relay's own.
    pub fn at_boundary(&self) -> bool {
        self.remaining.is_none() && self.have == 0
    }

    /// Observe `bytes`, the next ones relayed; `on_message` gets each complete text
    /// message that may carry usage.
    pub fn feed(&mut self, mut bytes: &[u8], on_message: &mut impl FnMut(&[u8])) {
        while !bytes.is_empty() {
            match self.remaining {
                None => {
                    bytes = self.read_header(bytes);
                    if self.remaining == Some(0) {
                        self.end_frame(on_message);
                    }
                }
                Some(left) => {
                    let take = usize::try_from(left).unwrap_or(usize::MAX).min(bytes.len());
                    let (payload, rest) = bytes.split_at(take);
                    bytes = rest;
                    let left = left - take as u64;
                    self.remaining = Some(left);
                    if left == 0 && self.whole_message() && payload.len() <= MESSAGE_CAP {
                        // A whole message in one piece, as most arrive: read where it is.
                        if top_level_type(payload).is_some_and(is_metered) {
                            on_message(payload);
                        }
                        self.release();
                    } else {
                        self.payload(payload);
                    }
                    if left == 0 {
                        self.end_frame(on_message);
                    }
                }
            }
        }
    }

    /// Take header bytes; once the header is complete, start the payload.
    fn read_header<'a>(&mut self, bytes: &'a [u8]) -> &'a [u8] {
        let mut used = 0;
        while self.have < header_len(&self.header[..self.have]) && used < bytes.len() {
            self.header[self.have] = bytes[used];
            self.have += 1;
            used += 1;
        }
        if self.have == header_len(&self.header[..self.have]) {
            self.start_frame();
        }
        &bytes[used..]
    }

    fn start_frame(&mut self) {
        let h = &self.header;
        self.fin = h[0] & 0x80 != 0;
        let compressed = h[0] & 0x40 != 0;
        self.opcode = h[0] & 0x0f;
        self.masked = h[1] & 0x80 != 0;
        let len = match h[1] & 0x7f {
            126 => u64::from(u16::from_be_bytes([h[2], h[3]])),
            127 => u64::from_be_bytes([h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9]]),
            n => u64::from(n),
        };
        self.have = 0;
        self.remaining = Some(len);
        match self.opcode {
            OP_TEXT => {
                self.in_text = true;
                // A server never masks; a masked or compressed message is relayed unread.
                self.release();
                if compressed || self.masked {
                    self.unread += 1;
                } else {
                    self.held = Held::Untyped(0);
                }
            }
            OP_CONTINUATION if self.in_text => {}
            OP_CLOSE => self.close.clear(),
            _ => {}
        }
    }

    fn payload(&mut self, payload: &[u8]) {
        match self.opcode {
            OP_TEXT | OP_CONTINUATION if self.in_text => self.keep(payload),
            OP_CLOSE if self.close.len() < 2 => {
                let take = payload.len().min(2 - self.close.len());
                self.close.extend_from_slice(&payload[..take]);
            }
            _ => {}
        }
    }

    /// The current frame is a whole text message to read, nothing of it held yet.
    fn whole_message(&self) -> bool {
        self.opcode == OP_TEXT && self.fin && self.held == Held::Untyped(0) && self.message.is_empty()
    }

    /// Add text payload to the message, or give the message up.
    fn keep(&mut self, payload: &[u8]) {
        if self.held == Held::No {
            return;
        }
        if self.message.len() + payload.len() > MESSAGE_CAP {
            self.release();
            self.unread += 1;
            return;
        }
        let before = self.message.len();
        self.message.extend_from_slice(payload);
        // The head is scanned once: when the first piece arrives (most messages arrive
        // whole) or when the message first reaches SNIFF bytes.
        if self.held != Held::Metered && (before == 0 || (before < SNIFF && self.message.len() >= SNIFF)) {
            let head = &self.message[..self.message.len().min(SNIFF)];
            match top_level_type(head) {
                Some(kind) if is_metered(kind) => self.held = Held::Metered,
                Some(_) => self.release(),
                None => self.held = Held::Untyped(head.len()),
            }
        }
    }

    fn end_frame(&mut self, on_message: &mut impl FnMut(&[u8])) {
        self.remaining = None;
        let text = matches!(self.opcode, OP_TEXT | OP_CONTINUATION) && self.in_text;
        if text && self.fin {
            self.in_text = false;
            let metered = match self.held {
                Held::No => false,
                Held::Metered => true,
                // The type not in sight in the head: found in the whole message, or none.
                Held::Untyped(scanned) => {
                    self.message.len() > scanned && top_level_type(&self.message).is_some_and(is_metered)
                }
            };
            if metered {
                on_message(&self.message);
            }
            self.release();
        } else if self.opcode == OP_CLOSE && self.close.len() == 2 {
            self.close_code = Some(u16::from_be_bytes([self.close[0], self.close[1]]));
        }
    }

    /// Give the current message up, keeping a small buffer for the next.
    fn release(&mut self) {
        self.held = Held::No;
        self.message.clear();
        if self.message.capacity() > RETAIN {
            self.message = Vec::new();
        }
    }
}

/// The length of a header that starts with `so_far`: 2 bytes until the length byte is
/// known, then 2, 4 or 10 plus 4 for a mask.
fn header_len(so_far: &[u8]) -> usize {
    let Some(&second) = so_far.get(1) else {
        return 2;
    };
    let mask = if second & 0x80 != 0 { 4 } else { 0 };
    let len = match second & 0x7f {
        126 => 4,
        127 => 10,
        _ => 2,
    };
    len + mask
}

/// Whether an event of this `type` carries usage ([`METERED_TYPES`]).
fn is_metered(kind: &[u8]) -> bool {
    METERED_TYPES.iter().any(|t| t.as_bytes() == kind)
}

/// The value of the top-level `"type"` key if `head` shows it whole: a scan that skips
/// strings and counts nesting, so a `type` inside a nested object is never taken.
fn top_level_type(head: &[u8]) -> Option<&[u8]> {
    let (mut depth, mut at) = (0_usize, 0);
    while at < head.len() {
        match head[at] {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            b'"' => {
                let end = string_end(head, at + 1)?;
                let after = head[end + 1..].trim_ascii_start();
                if depth == 1 && &head[at + 1..end] == b"type" && after.starts_with(b":") {
                    let value = after[1..].trim_ascii_start().strip_prefix(b"\"")?;
                    let close = string_end(value, 0)?;
                    return Some(&value[..close]);
                }
                at = end;
            }
            _ => {}
        }
        at += 1;
    }
    None
}

/// The index of the quote that closes the string starting at `from`, if in `bytes`.
fn string_end(bytes: &[u8], mut from: usize) -> Option<usize> {
    loop {
        from += memchr::memchr2(b'"', b'\\', bytes.get(from..)?)?;
        if bytes[from] == b'"' {
            return Some(from);
        }
        from += 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An unmasked server frame.
    fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![u8::from(fin) << 7 | opcode];
        match payload.len() {
            n if n < 126 => out.push(u8::try_from(n).unwrap()),
            n if n <= 0xffff => {
                out.push(126);
                out.extend_from_slice(&u16::try_from(n).unwrap().to_be_bytes());
            }
            n => {
                out.push(127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(payload);
        out
    }

    fn read_all(stream: &[u8], piece: usize) -> (Vec<String>, FrameReader) {
        let mut reader = FrameReader::default();
        let mut seen = Vec::new();
        for chunk in stream.chunks(piece) {
            reader.feed(chunk, &mut |m| seen.push(String::from_utf8_lossy(m).into_owned()));
        }
        (seen, reader)
    }

    #[test]
    fn metered_messages_are_found_in_any_split() {
        let done = br#"{"type":"response.done","response":{"usage":{"input_tokens":3}}}"#;
        let delta = format!(r#"{{"type":"response.output_audio.delta","delta":"{}"}}"#, "A".repeat(70_000));
        let mut stream = frame(true, OP_TEXT, delta.as_bytes());
        stream.extend(frame(true, 0x9, b"ping"));
        // Fragmented, with a ping between the fragments.
        stream.extend(frame(false, OP_TEXT, &done[..10]));
        stream.extend(frame(true, 0xA, b""));
        stream.extend(frame(true, OP_CONTINUATION, &done[10..]));
        stream.extend(frame(true, 0x2, &[0; 300]));
        stream.extend(frame(true, OP_CLOSE, &[0x03, 0xe9, b'b', b'y', b'e']));
        for piece in [1, 2, 3, 7, 100, 4096, stream.len()] {
            let (seen, reader) = read_all(&stream, piece);
            assert_eq!(seen, [String::from_utf8_lossy(done).into_owned()], "piece {piece}");
            assert!(reader.at_boundary());
            assert_eq!(reader.close_code, Some(1001));
        }
    }

    #[test]
    fn a_message_in_one_piece_is_read_where_it_is() {
        let done = br#"{"type":"response.done","response":{"usage":{"input_tokens":3}}}"#;
        let mut stream = frame(true, OP_TEXT, b"{\"type\":\"session.created\"}");
        stream.extend(frame(true, OP_TEXT, done));
        let (seen, reader) = read_all(&stream, stream.len());
        assert_eq!(seen, [String::from_utf8_lossy(done).into_owned()]);
        assert_eq!(reader.message.capacity(), 0, "nothing was copied");
    }

    #[test]
    fn the_boundary_is_known_mid_stream() {
        let stream = frame(true, OP_TEXT, b"{\"type\":\"session.created\"}");
        let mut reader = FrameReader::default();
        reader.feed(&stream[..5], &mut |_| {});
        assert!(!reader.at_boundary());
        reader.feed(&stream[5..], &mut |_| {});
        assert!(reader.at_boundary());
    }

    #[test]
    fn oversized_and_compressed_messages_are_relayed_unread() {
        let big = format!(r#"{{"type":"response.done","pad":"{}"}}"#, "x".repeat(MESSAGE_CAP));
        let mut stream = frame(true, OP_TEXT, big.as_bytes());
        let mut compressed = frame(true, OP_TEXT, b"{\"type\":\"response.done\"}");
        compressed[0] |= 0x40;
        stream.extend(compressed);
        let (seen, reader) = read_all(&stream, 65_536);
        assert!(seen.is_empty());
        assert_eq!(reader.unread, 2);
    }

    #[test]
    fn the_top_level_type_is_found_in_any_key_order() {
        let kind = |head: &[u8]| top_level_type(head).map(|k| String::from_utf8_lossy(k).into_owned());
        assert_eq!(kind(br#"{"type":"response.done","#).as_deref(), Some("response.done"));
        assert_eq!(kind(br#"{"event_id":"e1","type" : "response.completed""#).as_deref(), Some("response.completed"));
        assert_eq!(kind(br#"{"event_id":"e1""#), None);
        // A nested `type`, or one inside a string, is not the event's.
        let nested = br#"{"response":{"output":[{"type":"message"}]},"type":"response.done"}"#;
        assert_eq!(kind(nested).as_deref(), Some("response.done"));
        let quoted = br#"{"delta":"a\"type\":\"response.done\"","type":"x.delta"}"#;
        assert_eq!(kind(quoted).as_deref(), Some("x.delta"));
        assert_eq!(kind(br#"{"response":{"output":[{"type":"message"}]},"ty"#), None);
    }

    #[test]
    fn only_metered_events_are_handed_over_wherever_their_type_is() {
        // Keys in alphabetical order, as some servers send them: the type comes last,
        // after the bytes sniffed, and only the whole message shows it.
        let pad = "x".repeat(400);
        let created = format!(r#"{{"event_id":"e1","response":{{"text":"{pad}"}},"type":"response.created"}}"#);
        let done = format!(
            r#"{{"event_id":"e2","response":{{"text":"{pad}","usage":{{"input_tokens":3}}}},"type":"response.done"}}"#
        );
        let delta = r#"{"delta":"hi","event_id":"e3","type":"response.output_text.delta"}"#;
        let short_done = r#"{"event_id":"e4","type":"response.done"}"#;
        let mut stream = frame(true, OP_TEXT, created.as_bytes());
        stream.extend(frame(true, OP_TEXT, delta.as_bytes()));
        stream.extend(frame(true, OP_TEXT, done.as_bytes()));
        stream.extend(frame(true, OP_TEXT, short_done.as_bytes()));
        for piece in [1, 5, 100, 300, stream.len()] {
            let (seen, reader) = read_all(&stream, piece);
            assert_eq!(seen, [done.clone(), short_done.to_owned()], "piece {piece}");
            assert!(reader.message.capacity() <= RETAIN, "piece {piece}: the buffer is not held");
        }
    }
}
