//! The envelope: a fixed header in front of every stored value (query values, HTTP
//! responses, `Cache::set`). This module is the only one that writes or reads it.
//!
//! ```text
//! offset  size  field
//! 0       2     magic "CR"
//! 2       1     format version (3)
//! 3       1     codec id (what wrote the payload; 0 for HTTP responses)
//! 4       1     flags: bit 0 = payload compressed with lz4 (size-prepended); others 0
//! 5       1     kind (0 = a codec value, 1 = an HTTP response)
//! 6       8     fill time, Unix milliseconds, little endian
//! 14      8     fresh until, Unix milliseconds (fill time + TTL, saturating)
//! 22      4     compute cost of the fill, microseconds (saturating)
//! 26      8     schema fingerprint of the payload's type (0: none)
//! 34      2     dependency count N (at most 4096)
//! 36      8     fill id: random, so that two fills never have the same header
//! 44      ...   N × (u16 name length, name bytes (UTF-8), u64 generation)
//! ...     ...   payload (lz4-compressed when flag bit 0 is set)
//! ```
//!
//! Anything that does not match, from a truncated buffer to a foreign value written by
//! another program, opens to `None`: a miss, never a panic, and nothing is allocated from
//! lengths read out of the buffer (a compressed payload's claimed size is checked against
//! a bound before anything is decompressed). Opening a value copies nothing: the
//! dependencies and the payload are slices of the stored buffer (an lz4 payload is
//! decompressed once, into a buffer of its own).
//!
//! The fixed header ([`HEAD_LEN`] bytes) names one fill: a process holding a copy of a value
//! ([`crate::copies`]) asks Redis for these bytes only, and uses its copy while they match.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

const MAGIC: [u8; 2] = *b"CR";
const FORMAT: u8 = 3;
const FIXED_LEN: usize = 44;
/// Length of the fixed header, which tells one fill's value from any other.
pub(crate) const HEAD_LEN: usize = FIXED_LEN;
/// Flag bit: the payload is lz4-compressed, its decompressed size prepended (u32 LE).
const FLAG_LZ4: u8 = 1;
/// Most dependencies one value may record. A fill that depends on more is not stored.
pub(crate) const MAX_DEPS: usize = 4096;

/// What kind of value an envelope holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A value written by a codec (`#[cached_query]`, `Cache::set`).
    Value = 0,
    /// An HTTP response (`#[cached_view]`, `CacheLayer`).
    Response = 1,
}

/// The fixed fields of an envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    /// Id of the codec that wrote the payload.
    pub(crate) codec: u8,
    pub(crate) kind: Kind,
    /// When the fill finished, in Unix milliseconds.
    pub(crate) filled_at_ms: u64,
    /// Until when the value is fresh, in Unix milliseconds.
    pub(crate) fresh_until_ms: u64,
    /// How long the fill's computation took, in microseconds.
    pub(crate) cost_us: u32,
    /// Fingerprint of the payload's schema, for codecs that need one (0: none).
    pub(crate) fingerprint: u64,
    /// Random, per fill.
    pub(crate) fill_id: u64,
}

impl Header {
    /// A header for a value of `kind` filled now, fresh for `ttl` (at most
    /// [`MAX_TTL`](crate::backend::MAX_TTL)), computed in `cost`.
    pub(crate) fn new(kind: Kind, codec: u8, ttl: Duration, cost: Duration) -> Header {
        let filled_at_ms = now_ms();
        let ttl_ms = ttl.min(crate::backend::MAX_TTL).as_millis() as u64;
        Header {
            codec,
            kind,
            filled_at_ms,
            fresh_until_ms: filled_at_ms.saturating_add(ttl_ms),
            cost_us: u32::try_from(cost.as_micros()).unwrap_or(u32::MAX),
            fingerprint: 0,
            fill_id: rand::random(),
        }
    }

    /// When the fill finished.
    #[cfg(feature = "view")]
    pub(crate) fn filled_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.filled_at_ms)
    }

    /// The TTL the value was stored with.
    #[cfg(feature = "view")]
    pub(crate) fn ttl(&self) -> Duration {
        Duration::from_millis(self.fresh_until_ms.saturating_sub(self.filled_at_ms))
    }
}

/// Now, in Unix milliseconds (0 before 1970).
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// When to compress a payload, and the most a reader decompresses.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Compression {
    /// Compress payloads larger than this (`None`: never).
    #[cfg_attr(not(feature = "lz4"), allow(dead_code))]
    pub(crate) above: Option<usize>,
    /// The largest payload a reader accepts decompressing (the largest value stored).
    pub(crate) limit: usize,
}

/// Writes one envelope: the header and dependencies first, then the payload the caller
/// appends to [`Writer::payload`], then [`Writer::seal`] (which compresses it per
/// [`Compression`]).
pub(crate) struct Writer {
    buf: Vec<u8>,
    payload_start: usize,
}

impl Writer {
    /// Starts an envelope for `header` recording `deps` (at most [`MAX_DEPS`], each name
    /// at most 65,535 bytes: `None` otherwise), with room for `payload_hint` bytes.
    pub(crate) fn new<'d>(
        header: &Header,
        deps: impl ExactSizeIterator<Item = (&'d str, u64)> + Clone,
        payload_hint: usize,
    ) -> Option<Writer> {
        if deps.len() > MAX_DEPS {
            return None;
        }
        let deps_len: usize = deps.clone().map(|(n, _)| 10 + n.len()).sum();
        let mut buf = Vec::with_capacity(FIXED_LEN + deps_len + payload_hint);
        buf.extend_from_slice(&MAGIC);
        buf.push(FORMAT);
        buf.push(header.codec);
        buf.push(0);
        buf.push(header.kind as u8);
        buf.extend_from_slice(&header.filled_at_ms.to_le_bytes());
        buf.extend_from_slice(&header.fresh_until_ms.to_le_bytes());
        buf.extend_from_slice(&header.cost_us.to_le_bytes());
        buf.extend_from_slice(&header.fingerprint.to_le_bytes());
        buf.extend_from_slice(&(deps.len() as u16).to_le_bytes());
        buf.extend_from_slice(&header.fill_id.to_le_bytes());
        for (name, generation) in deps {
            let len = u16::try_from(name.len()).ok()?;
            buf.extend_from_slice(&len.to_le_bytes());
            buf.extend_from_slice(name.as_bytes());
            buf.extend_from_slice(&generation.to_le_bytes());
        }
        let payload_start = buf.len();
        Some(Writer { buf, payload_start })
    }

    /// Where the payload goes.
    pub(crate) fn payload(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Records the schema fingerprint of the payload's type, known once it is written.
    pub(crate) fn set_fingerprint(&mut self, fingerprint: u64) {
        self.buf[26..34].copy_from_slice(&fingerprint.to_le_bytes());
    }

    /// Shortens the life `header` (this envelope's) gave the value to `ttl`: a response
    /// whose own headers allow less than the view's ttl.
    #[cfg(feature = "view")]
    pub(crate) fn set_ttl(&mut self, header: &Header, ttl: Duration) {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let fresh_until = header
            .filled_at_ms
            .saturating_add(ttl_ms)
            .min(header.fresh_until_ms);
        self.buf[14..22].copy_from_slice(&fresh_until.to_le_bytes());
    }

    /// The finished envelope.
    pub(crate) fn seal(mut self, compression: Compression) -> Bytes {
        compress(&mut self.buf, self.payload_start, compression);
        Bytes::from(self.buf)
    }
}

/// A stored value, opened: its header, its dependencies and its payload (decompressed).
#[derive(Debug, Clone)]
pub(crate) struct Opened {
    pub(crate) header: Header,
    /// The stored fixed header ([`HEAD_LEN`] bytes).
    pub(crate) head: Bytes,
    /// The dependency records, validated by [`open`].
    deps: Bytes,
    n_deps: usize,
    /// The payload, decompressed.
    pub(crate) payload: Bytes,
    /// Size of the stored bytes.
    pub(crate) stored_len: usize,
    /// Bytes held in memory: the stored ones, and the payload again when decompressed.
    pub(crate) held: usize,
    /// The payload decoded by a call whose type shares (`crate::share`): one slot for the
    /// opened value and all its clones.
    pub(crate) decoded: crate::share::Decoded,
}

/// Room a codec value's decoded form takes in memory, per byte of its payload: kept beside
/// the bytes once a call of a `Clone` type decoded it ([`crate::share`]); 700 rows of four
/// fields are 22.8 KB stored and about 90 KB decoded.
const DECODED_PER_BYTE: usize = 3;

impl Opened {
    /// What keeping this value under a key of `key_len` bytes weighs in a bounded cache of
    /// opened values (local copies, the L1): the bytes it holds, room for a codec value's
    /// decoded form, and a fixed overhead.
    pub(crate) fn weight(&self, key_len: usize) -> u32 {
        let decoded = match self.header.kind {
            Kind::Value => self.payload.len().saturating_mul(DECODED_PER_BYTE),
            // A page's decoded form shares its bytes.
            Kind::Response => 0,
        };
        let weight = key_len
            .saturating_add(self.held)
            .saturating_add(decoded)
            .saturating_add(128);
        u32::try_from(weight).unwrap_or(u32::MAX)
    }

    /// The generations the value was filled under: (name, generation).
    pub(crate) fn deps(&self) -> DepIter<'_> {
        DepIter {
            rest: &self.deps,
            left: self.n_deps,
        }
    }
}

/// The dependencies of an [`Opened`] value, borrowed from its bytes.
#[derive(Clone)]
pub(crate) struct DepIter<'a> {
    rest: &'a [u8],
    left: usize,
}

impl<'a> Iterator for DepIter<'a> {
    type Item = (&'a str, u64);

    fn next(&mut self) -> Option<(&'a str, u64)> {
        let (dep, rest) = split_dep(self.rest)?;
        self.rest = rest;
        self.left -= 1;
        Some(dep)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for DepIter<'_> {}

fn split_dep(bytes: &[u8]) -> Option<((&str, u64), &[u8])> {
    let len = u16::from_le_bytes(bytes.get(..2)?.try_into().ok()?) as usize;
    let name = std::str::from_utf8(bytes.get(2..2 + len)?).ok()?;
    let generation = u64::from_le_bytes(bytes.get(2 + len..10 + len)?.try_into().ok()?);
    Some(((name, generation), &bytes[10 + len..]))
}

/// Opens `bytes`; `None` for anything that is not a valid envelope of format 3, or whose
/// compressed payload is corrupt or claims more than `limit` bytes.
pub(crate) fn open(bytes: Bytes, limit: usize) -> Option<Opened> {
    let fixed = bytes.get(..FIXED_LEN)?;
    let known_flags = if cfg!(feature = "lz4") { FLAG_LZ4 } else { 0 };
    if fixed[..2] != MAGIC || fixed[2] != FORMAT || fixed[4] & !known_flags != 0 {
        return None;
    }
    let kind = match fixed[5] {
        0 => Kind::Value,
        1 => Kind::Response,
        _ => return None,
    };
    let u64_at = |at: usize| fixed[at..at + 8].try_into().ok().map(u64::from_le_bytes);
    let header = Header {
        codec: fixed[3],
        kind,
        filled_at_ms: u64_at(6)?,
        fresh_until_ms: u64_at(14)?,
        cost_us: u32::from_le_bytes(fixed[22..26].try_into().ok()?),
        fingerprint: u64_at(26)?,
        fill_id: u64_at(36)?,
    };
    let n_deps = u16::from_le_bytes(fixed[34..36].try_into().ok()?) as usize;
    if n_deps > MAX_DEPS || header.fresh_until_ms < header.filled_at_ms {
        return None;
    }
    let mut rest = &bytes[FIXED_LEN..];
    for _ in 0..n_deps {
        rest = split_dep(rest)?.1;
    }
    let payload_at = bytes.len() - rest.len();
    let deps = bytes.slice(FIXED_LEN..payload_at);
    let stored = bytes.slice(payload_at..);
    let compressed = fixed[4] & FLAG_LZ4 != 0;
    let payload = if compressed {
        Bytes::from(decompress(&stored, limit)?)
    } else {
        stored
    };
    Some(Opened {
        header,
        head: bytes.slice(..FIXED_LEN),
        deps,
        n_deps,
        held: bytes.len() + if compressed { payload.len() } else { 0 },
        payload,
        stored_len: bytes.len(),
        decoded: crate::share::Decoded::default(),
    })
}

/// Compresses the payload of a freshly written envelope (`buf`, payload from
/// `payload_start`) when it is larger than `above`, no larger than `limit` (what a reader
/// accepts decompressing), and compression actually shrinks it.
#[cfg(feature = "lz4")]
fn compress(buf: &mut Vec<u8>, payload_start: usize, compression: Compression) {
    let Some(above) = compression.above else {
        return;
    };
    let payload = &buf[payload_start..];
    if payload.len() <= above || payload.len() > compression.limit.min(u32::MAX as usize) {
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
fn compress(_buf: &mut Vec<u8>, _payload_start: usize, _compression: Compression) {}

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
    None // `open` already rejects the flag without the feature
}

/// Opens arbitrary bytes as a stored value and walks its dependencies, for the fuzz target
/// and the decoder property test: it must never panic nor allocate without bound.
#[cfg(feature = "fuzz")]
pub(crate) fn open_untrusted(bytes: &[u8]) -> Option<Opened> {
    let opened = open(Bytes::copy_from_slice(bytes), 1 << 20)?;
    assert_eq!(
        opened.deps().count(),
        opened.n_deps,
        "open validated every dependency"
    );
    Some(opened)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_COMPRESSION: Compression = Compression {
        above: None,
        limit: 1 << 20,
    };

    pub(super) fn sealed(deps: &[(&str, u64)], payload: &[u8], compression: Compression) -> Bytes {
        let header = Header::new(Kind::Value, 1, Duration::from_secs(60), Duration::ZERO);
        let mut writer = Writer::new(&header, deps.iter().copied(), payload.len()).unwrap();
        writer.payload().extend_from_slice(payload);
        writer.seal(compression)
    }

    #[test]
    fn round_trip_with_deps() {
        let header = Header::new(
            Kind::Response,
            7,
            Duration::from_secs(5),
            Duration::from_millis(3),
        );
        let deps = [("q:users", 7u64), ("t:user:42", u64::MAX)];
        let mut writer = Writer::new(&header, deps.iter().copied(), 3).unwrap();
        writer.payload().extend_from_slice(b"abc");
        let bytes = writer.seal(NO_COMPRESSION);
        let opened = open(bytes, 1 << 20).unwrap();
        assert_eq!(opened.header, header);
        assert_eq!(opened.header.cost_us, 3000);
        assert_eq!(opened.header.ttl(), Duration::from_secs(5));
        assert_eq!(opened.deps().collect::<Vec<_>>(), deps);
        assert_eq!(&opened.payload[..], b"abc");
        assert_eq!(&opened.head[..], &bytes_again(&header, &deps)[..HEAD_LEN]);
    }

    /// A codec value is weighed with room for its decoded form; a page, whose decoded form
    /// shares its bytes, is not.
    #[test]
    fn a_value_weighs_its_bytes_and_room_to_decode_it() {
        let payload = [7u8; 1000];
        let value = open(sealed(&[("q:users", 1)], &payload, NO_COMPRESSION), 1 << 20).unwrap();
        let stored = value.stored_len;
        assert_eq!(value.weight(10) as usize, 10 + stored + 3 * 1000 + 128);

        let header = Header::new(Kind::Response, 1, Duration::from_secs(60), Duration::ZERO);
        let mut writer = Writer::new(&header, [("q:users", 1)].into_iter(), 1000).unwrap();
        writer.payload().extend_from_slice(&payload);
        let page = open(writer.seal(NO_COMPRESSION), 1 << 20).unwrap();
        assert_eq!(page.weight(10) as usize, 10 + page.stored_len + 128);
    }

    fn bytes_again(header: &Header, deps: &[(&str, u64)]) -> Bytes {
        let mut writer = Writer::new(header, deps.iter().copied(), 3).unwrap();
        writer.payload().extend_from_slice(b"other payload");
        writer.seal(NO_COMPRESSION)
    }

    /// A copy of a value is recognised by its head alone: two fills never share one, even
    /// in the same millisecond with the same cost and dependencies.
    #[test]
    fn every_fill_has_a_head_of_its_own() {
        let heads: std::collections::HashSet<Bytes> = (0..1000)
            .map(|_| sealed(&[("all", 1)], b"same", NO_COMPRESSION).slice(..HEAD_LEN))
            .collect();
        assert_eq!(heads.len(), 1000);
    }

    #[test]
    fn too_many_or_too_long_dependencies_are_refused() {
        let header = Header::new(Kind::Value, 1, Duration::from_secs(1), Duration::ZERO);
        let many: Vec<(String, u64)> = (0..=MAX_DEPS).map(|i| (format!("t:{i}"), 1)).collect();
        let too_many = many.iter().map(|(n, g)| (n.as_str(), *g));
        assert!(Writer::new(&header, too_many, 0).is_none());
        let long = "x".repeat(70_000);
        assert!(Writer::new(&header, [(long.as_str(), 1)].into_iter(), 0).is_none());
    }

    #[test]
    fn foreign_and_truncated_bytes_are_rejected() {
        let buf = sealed(&[("all", 1)], b"", NO_COMPRESSION);
        assert!(open(buf.clone(), 1 << 20).is_some());
        for cut in 0..buf.len() {
            assert!(open(buf.slice(..cut), 1 << 20).is_none(), "prefix of {cut}");
        }
        assert!(
            open(
                Bytes::from_static(b"hello world, not an envelope at all"),
                9
            )
            .is_none()
        );
        let patched = |at: usize, value: u8| {
            let mut b = buf.to_vec();
            b[at] = value;
            open(Bytes::from(b), 1 << 20)
        };
        assert!(patched(2, 1).is_none(), "format 1");
        assert!(patched(4, 2).is_none(), "unknown flags");
        assert!(patched(5, 9).is_none(), "unknown kind");
        assert!(patched(34, 5).is_none(), "claims deps that are not there");
        let mut expired_before_filled = buf.to_vec();
        expired_before_filled[14..22].fill(0);
        assert!(
            open(Bytes::from(expired_before_filled), 1 << 20).is_none(),
            "fresh until before the fill"
        );
    }
}

#[cfg(all(test, feature = "lz4"))]
mod lz4_tests {
    use super::tests::sealed;
    use super::*;

    #[test]
    fn large_payloads_are_compressed_and_read_back() {
        let payload = "users ".repeat(2000).into_bytes();
        let compression = Compression {
            above: Some(1024),
            limit: 1 << 20,
        };
        let buf = sealed(&[], &payload, compression);
        assert!(buf.len() < payload.len() / 4, "{} bytes", buf.len());
        assert_eq!(
            &open(buf.clone(), 1 << 20).unwrap().payload[..],
            &payload[..]
        );
        assert!(open(buf, 100).is_none(), "claimed size over the bound");
    }

    #[test]
    fn small_or_incompressible_payloads_are_left_alone() {
        for (payload, above) in [(vec![1u8; 100], Some(1024)), (vec![1u8; 5000], None)] {
            let buf = sealed(
                &[],
                &payload,
                Compression {
                    above,
                    limit: 1 << 20,
                },
            );
            assert_eq!(buf[4], 0, "not compressed");
        }
    }

    #[test]
    fn corrupt_compressed_payloads_are_misses() {
        let mut buf = sealed(
            &[],
            b"",
            Compression {
                above: None,
                limit: 1,
            },
        )
        .to_vec();
        buf[4] = FLAG_LZ4;
        let header_len = buf.len();
        buf.extend_from_slice(&[0xff, 0xff, 0xff, 0x7f, 1, 2, 3]);
        assert!(open(Bytes::from(buf.clone()), usize::MAX).is_none());
        buf.truncate(header_len);
        buf.extend_from_slice(&[10, 0, 0, 0, 0xf0]);
        assert!(open(Bytes::from(buf), 1 << 20).is_none());
    }
}
