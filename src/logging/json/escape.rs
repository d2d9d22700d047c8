//! The inside of a JSON string, escaped with `serde_json`'s choices, quickly for the
//! clean text log lines are almost entirely made of.

use std::fmt;

use crate::json_scan::first_special;

/// Escapes what is written through it into the inside of a JSON string (`escape_into`),
/// for text that only comes as `fmt` output.
pub(super) struct Escaped<'a>(pub(super) &'a mut String);

impl fmt::Write for Escaped<'_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        escape_into(self.0, text);
        Ok(())
    }
}

/// Appends `text` as the inside of a JSON string, with `serde_json`'s choices: the
/// two-letter escapes for `\" \\ \b \f \n \r \t`, `\u00xx` (lower case) for the other
/// control characters, and everything else, DEL and non-ASCII included, as is.
#[expect(clippy::inline_always, reason = "a call's spills and returns cost as much as a short scan")]
#[inline(always)]
pub(super) fn escape_into(line: &mut String, text: &str) {
    // Clean text, the usual case, is one check and one copy: small enough to inline
    // where each field is written, which saved a call's register spills per field.
    match find_escape(text.as_bytes()) {
        None => line.push_str(text),
        Some(at) => escape_from(line, text, at),
    }
}

/// `escape_into` for text whose first byte needing an escape is at `at`.
#[inline(never)]
fn escape_from(line: &mut String, text: &str, mut at: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = text.as_bytes();
    let mut start = 0;
    loop {
        // Every byte that needs an escape is ASCII, so `start..at` ends on a char boundary.
        line.push_str(&text[start..at]);
        let byte = bytes[at];
        match byte {
            b'"' => line.push_str("\\\""),
            b'\\' => line.push_str("\\\\"),
            b'\n' => line.push_str("\\n"),
            b'\r' => line.push_str("\\r"),
            b'\t' => line.push_str("\\t"),
            0x08 => line.push_str("\\b"),
            0x0c => line.push_str("\\f"),
            _ => {
                line.push_str("\\u00");
                line.push(char::from(HEX[usize::from(byte >> 4)]));
                line.push(char::from(HEX[usize::from(byte & 0xf)]));
            }
        }
        start = at + 1;
        match find_escape(&bytes[start..]) {
            Some(next) => at = start + next,
            None => break,
        }
    }
    line.push_str(&text[start..]);
}

/// The bytes JSON strings cannot hold as they are: `"`, `\` and the controls below 0x20.
const NEEDS_ESCAPE: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = true;
        byte += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// The index of the first byte that needs an escape. Log text is almost always clean, so
/// it is checked a word (eight bytes) at a time: the first byte `first_special` finds is
/// exact, and a word that overlaps bytes already found clean has its first flag past them.
#[expect(clippy::inline_always, reason = "a call's spills and returns cost as much as a short scan")]
#[inline(always)]
pub(super) fn find_escape(bytes: &[u8]) -> Option<usize> {
    let len = bytes.len();
    if len < 4 {
        return bytes.iter().position(|&b| NEEDS_ESCAPE[usize::from(b)]);
    }
    if len < 8 {
        // Most field names and many values: bytes 0..4 and len-4..len as one word.
        let word = u64::from(load4(bytes, 0)) | (u64::from(load4(bytes, len - 4)) << 32);
        let at = first_special(word)?;
        return Some(if at < 4 { at } else { len - 4 + (at - 4) });
    }
    let mut from = 0;
    while from + 8 <= len {
        if let Some(at) = first_special(load8(bytes, from)) {
            return Some(from + at);
        }
        from += 8;
    }
    if from == len {
        return None;
    }
    // The rest as the last eight bytes.
    first_special(load8(bytes, len - 8)).map(|at| len - 8 + at)
}

fn load4(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

fn load8(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}
