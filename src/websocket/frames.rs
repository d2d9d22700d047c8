//! A passive WebSocket frame reader for the upstream→client direction: it is shown every
//! relayed byte, in whatever pieces the socket delivers them, and never changes one.
//!
//! It tracks frame boundaries (so the relay knows when a close frame of its own can be
//! written to the client without cutting a frame in two) and reassembles text messages,
//! fragmented or not, up to a cap, handing each complete one to the caller. Messages
//! whose `type` is not one usage is read from are dropped as soon as their first bytes
//! show it, so a stream of audio deltas is never held; binary frames, messages over the
//! cap and compressed (RSV1) messages are passed over without buffering.

/// The largest text message reassembled for reading. Events that carry usage hold a
/// response's output text, rarely more than some hundred KiB; bigger ones are relayed
/// unread.
pub const MESSAGE_CAP: usize = 4 << 20;

/// Bytes of a message looked at for its `type` before deciding to keep it.
const SNIFF: usize = 256;

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
    /// The text message being reassembled, if it is still worth keeping.
    message: Option<Vec<u8>>,
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
                    self.payload(payload);
                    bytes = rest;
                    let left = left - take as u64;
                    self.remaining = Some(left);
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
                self.message = (!compressed && !self.masked).then(Vec::new);
                if self.message.is_none() {
                    self.unread += 1;
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

    /// Add text payload to the message, or give the message up.
    fn keep(&mut self, payload: &[u8]) {
        let Some(message) = &mut self.message else {
            return;
        };
        if message.len() + payload.len() > MESSAGE_CAP {
            self.message = None;
            self.unread += 1;
            return;
        }
        let before = message.len();
        message.extend_from_slice(payload);
        if before < SNIFF && message.len() >= SNIFF && !may_be_metered(message) {
            self.message = None;
        }
    }

    fn end_frame(&mut self, on_message: &mut impl FnMut(&[u8])) {
        self.remaining = None;
        let text = matches!(self.opcode, OP_TEXT | OP_CONTINUATION) && self.in_text;
        if text && self.fin {
            self.in_text = false;
            if let Some(message) = self.message.take().filter(|m| may_be_metered(m)) {
                on_message(&message);
            }
        } else if self.opcode == OP_CLOSE && self.close.len() == 2 {
            self.close_code = Some(u16::from_be_bytes([self.close[0], self.close[1]]));
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

/// Whether a message's first bytes leave open that it is a metered event: its top-level
/// `type` is one of [`METERED_TYPES`], or not yet in sight (OpenAI sends `type` first,
/// but the order of keys is not promised).
fn may_be_metered(message: &[u8]) -> bool {
    let head = &message[..message.len().min(SNIFF)];
    top_level_type(head).is_none_or(|kind| METERED_TYPES.iter().any(|t| t.as_bytes() == kind))
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
    while from < bytes.len() {
        match bytes[from] {
            b'\\' => from += 2,
            b'"' => return Some(from),
            _ => from += 1,
        }
    }
    None
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
    fn sniffing_drops_other_types_only() {
        assert!(may_be_metered(br#"{"type":"response.done","#));
        assert!(may_be_metered(br#"{"event_id":"e1","type" : "response.completed""#));
        assert!(!may_be_metered(br#"{"type":"response.output_audio.delta","delta":""#));
        assert!(may_be_metered(br#"{"event_id":"e1""#));
        // Keys in any order; a nested `type` is not the event's.
        assert!(may_be_metered(br#"{"response":{"output":[{"type":"message"}]},"type":"response.done"}"#));
        assert!(!may_be_metered(br#"{"delta":"a\"type\":\"response.done\"","type":"x.delta"}"#));
        assert!(may_be_metered(br#"{"response":{"output":[{"type":"message"}]},"ty"#));
    }
}
