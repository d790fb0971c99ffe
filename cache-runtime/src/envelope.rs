//! The envelope: a fixed header in front of every stored payload.
//!
//! ```text
//! offset  size  field
//! 0       2     magic "CR"
//! 2       1     format version (1)
//! 3       1     codec id
//! 4       1     flags: bit 0 = payload compressed with lz4 (size-prepended); others 0
//! 5       1     kind (0 = query value, 1 = view response)
//! 6       8     fill time, Unix milliseconds, little endian
//! 14      4     compute cost of the fill, microseconds (saturating)
//! 18      2     dependency count N
//! 20      ...   N × (u16 name length, name bytes, u64 generation)
//! ...     ...   codec payload
//! ```
//!
//! Anything that does not match, from a truncated buffer to a foreign value written by
//! another program, decodes to `None`: a miss, never a panic, and nothing is allocated
//! from lengths read out of the buffer (a compressed payload's claimed size is checked
//! against a bound before anything is decompressed).

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const MAGIC: [u8; 2] = *b"CR";
const FORMAT: u8 = 1;
const FIXED_LEN: usize = 20;
/// Flag bit: the payload is lz4-compressed, its decompressed size prepended (u32 LE).
const FLAG_LZ4: u8 = 1;
/// Most dependencies one value may record; more means the buffer is corrupt.
const MAX_DEPS: usize = 4096;

/// What the envelope holds besides the payload.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Header {
    /// Id of the codec that wrote the payload.
    pub codec: u8,
    /// What kind of value this is (0 for query values).
    pub kind: u8,
    /// Whether the payload is lz4-compressed.
    pub compressed: bool,
    /// When the fill finished, in Unix milliseconds.
    pub filled_at_ms: u64,
    /// How long the fill's computation took, in microseconds.
    pub cost_us: u32,
    /// The generations the fill ran under (name, generation).
    pub deps: Vec<(String, u64)>,
}

impl Header {
    /// A header for a value computed now, in `cost`.
    pub fn now(codec: u8, cost: Duration) -> Header {
        let filled_at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Header {
            codec,
            kind: 0,
            compressed: false,
            filled_at_ms,
            cost_us: u32::try_from(cost.as_micros()).unwrap_or(u32::MAX),
            deps: Vec::new(),
        }
    }

    /// Writes the header into a fresh buffer, leaving room for `payload_hint` bytes.
    pub fn write(&self, payload_hint: usize) -> Vec<u8> {
        let deps_len: usize = self.deps.iter().map(|(n, _)| 10 + n.len()).sum();
        let mut out = Vec::with_capacity(FIXED_LEN + deps_len + payload_hint);
        out.extend_from_slice(&MAGIC);
        out.push(FORMAT);
        out.push(self.codec);
        out.push(if self.compressed { FLAG_LZ4 } else { 0 });
        out.push(self.kind);
        out.extend_from_slice(&self.filled_at_ms.to_le_bytes());
        out.extend_from_slice(&self.cost_us.to_le_bytes());
        let n = self.deps.len().min(MAX_DEPS);
        out.extend_from_slice(&(n as u16).to_le_bytes());
        for (name, generation) in self.deps.iter().take(n) {
            let name = &name.as_bytes()[..name.len().min(u16::MAX as usize)];
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(name);
            out.extend_from_slice(&generation.to_le_bytes());
        }
        out
    }
}

/// Splits `bytes` into header and payload; `None` for anything that is not a valid
/// envelope of format 1.
pub fn read(bytes: &[u8]) -> Option<(Header, &[u8])> {
    let fixed = bytes.get(..FIXED_LEN)?;
    let known_flags = if cfg!(feature = "lz4") { FLAG_LZ4 } else { 0 };
    if fixed[..2] != MAGIC || fixed[2] != FORMAT || fixed[4] & !known_flags != 0 {
        return None;
    }
    let mut header = Header {
        codec: fixed[3],
        kind: fixed[5],
        compressed: fixed[4] & FLAG_LZ4 != 0,
        filled_at_ms: u64::from_le_bytes(fixed[6..14].try_into().ok()?),
        cost_us: u32::from_le_bytes(fixed[14..18].try_into().ok()?),
        deps: Vec::new(),
    };
    let n = u16::from_le_bytes(fixed[18..20].try_into().ok()?) as usize;
    if n > MAX_DEPS {
        return None;
    }
    let mut rest = &bytes[FIXED_LEN..];
    for _ in 0..n {
        let len = u16::from_le_bytes(rest.get(..2)?.try_into().ok()?) as usize;
        let name = std::str::from_utf8(rest.get(2..2 + len)?).ok()?;
        let generation = u64::from_le_bytes(rest.get(2 + len..10 + len)?.try_into().ok()?);
        header.deps.push((name.to_owned(), generation));
        rest = &rest[10 + len..];
    }
    Some((header, rest))
}

/// Compresses the payload of a freshly written envelope (`buf`, payload from
/// `payload_start`) when it is larger than `above`, no larger than `limit` (what a reader
/// accepts decompressing), and compression actually shrinks it.
#[cfg(feature = "lz4")]
pub fn seal(buf: &mut Vec<u8>, payload_start: usize, above: Option<usize>, limit: usize) {
    let Some(above) = above else { return };
    let payload = &buf[payload_start..];
    if payload.len() <= above || payload.len() > limit.min(u32::MAX as usize) {
        return;
    }
    let compressed = lz4_flex::compress_prepend_size(payload);
    if compressed.len() < payload.len() {
        buf.truncate(payload_start);
        buf.extend_from_slice(&compressed);
        buf[4] |= FLAG_LZ4;
    }
}

/// Without the `lz4` feature values are stored as they are.
#[cfg(not(feature = "lz4"))]
pub fn seal(_buf: &mut Vec<u8>, _payload_start: usize, _above: Option<usize>, _limit: usize) {}

/// The codec payload of an envelope, decompressed when needed; `None` when a compressed
/// payload is corrupt or claims more than `max` bytes.
pub fn payload<'a>(header: &Header, payload: &'a [u8], max: usize) -> Option<Cow<'a, [u8]>> {
    if !header.compressed {
        return Some(Cow::Borrowed(payload));
    }
    decompress(payload, max).map(Cow::Owned)
}

#[cfg(feature = "lz4")]
fn decompress(payload: &[u8], max: usize) -> Option<Vec<u8>> {
    let claimed = u32::from_le_bytes(payload.get(..4)?.try_into().ok()?) as usize;
    if claimed > max {
        return None;
    }
    lz4_flex::decompress_size_prepended(payload).ok()
}

#[cfg(not(feature = "lz4"))]
fn decompress(_payload: &[u8], _max: usize) -> Option<Vec<u8>> {
    None // `read` already rejects the flag without the feature
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_deps() {
        let mut h = Header::now(1, Duration::from_millis(3));
        h.deps = vec![("q:users".into(), 7), ("t:user:42".into(), u64::MAX)];
        let mut buf = h.write(3);
        buf.extend_from_slice(b"abc");
        let (back, payload) = read(&buf).unwrap();
        assert_eq!(back, h);
        assert_eq!(back.cost_us, 3000);
        assert_eq!(payload, b"abc");
    }

    #[test]
    fn foreign_and_truncated_bytes_are_rejected() {
        let h = Header::now(1, Duration::ZERO);
        let buf = h.write(0);
        assert!(read(&buf).is_some());
        for cut in 0..buf.len() {
            assert!(read(&buf[..cut]).is_none(), "prefix of {cut} bytes");
        }
        assert!(read(b"hello world, this is not an envelope").is_none());
        let mut wrong_format = buf.clone();
        wrong_format[2] = 2;
        assert!(read(&wrong_format).is_none());
        let mut flags = buf.clone();
        flags[4] = 2;
        assert!(read(&flags).is_none(), "unknown flags are rejected");
        let mut deps = buf;
        deps[18] = 5; // claims five deps that are not there
        assert!(read(&deps).is_none());
    }
}

#[cfg(all(test, feature = "lz4"))]
mod lz4_tests {
    use super::*;

    #[test]
    fn large_payloads_are_compressed_and_read_back() {
        let mut buf = Header::now(1, Duration::ZERO).write(0);
        let start = buf.len();
        let payload = "users ".repeat(2000).into_bytes();
        buf.extend_from_slice(&payload);
        seal(&mut buf, start, Some(1024), 1 << 20);
        assert!(buf.len() < payload.len() / 4, "{} bytes", buf.len());
        let (header, stored) = read(&buf).unwrap();
        assert!(header.compressed);
        assert_eq!(
            super::payload(&header, stored, 1 << 20).unwrap().as_ref(),
            &payload[..]
        );
        assert!(
            super::payload(&header, stored, 100).is_none(),
            "claimed size over the bound"
        );
    }

    #[test]
    fn small_or_incompressible_payloads_are_left_alone() {
        for (payload, above) in [(vec![1u8; 100], Some(1024)), (vec![1u8; 5000], None)] {
            let mut buf = Header::now(1, Duration::ZERO).write(0);
            let start = buf.len();
            buf.extend_from_slice(&payload);
            seal(&mut buf, start, above, 1 << 20);
            assert!(!read(&buf).unwrap().0.compressed);
        }
    }

    #[test]
    fn corrupt_compressed_payloads_are_misses() {
        let mut buf = Header::now(1, Duration::ZERO).write(0);
        buf[4] = FLAG_LZ4;
        buf.extend_from_slice(&[0xff, 0xff, 0xff, 0x7f, 1, 2, 3]);
        let (header, stored) = read(&buf).unwrap();
        assert!(super::payload(&header, stored, usize::MAX).is_none());
        buf.truncate(20);
        buf.extend_from_slice(&[10, 0, 0, 0, 0xf0]);
        let (header, stored) = read(&buf).unwrap();
        assert!(super::payload(&header, stored, 1 << 20).is_none());
    }
}
