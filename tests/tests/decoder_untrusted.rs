//! Stored bytes are untrusted: whatever Redis hands back, decoding is a miss or a value,
//! never a panic and never an unbounded allocation, for query values and HTTP responses
//! alike. (The same entry point is fuzzed by `cache-runtime/fuzz/fuzz_targets/decode.rs`.)

use cache_runtime::fuzz::decode_untrusted;
use proptest::prelude::*;

/// Length of the envelope's fixed header (format 3).
const HEADER_LEN: usize = 44;

/// A valid envelope header (format 3, no deps, fresh for an hour) of `kind` (0: a codec
/// value, MessagePack; 1: an HTTP response), to put random payloads behind.
fn header(kind: u8) -> Vec<u8> {
    let codec = if kind == 0 { 1 } else { 0 };
    let mut h = vec![b'C', b'R', 3, codec, 0, kind];
    h.extend_from_slice(&1_000u64.to_le_bytes());
    h.extend_from_slice(&3_601_000u64.to_le_bytes());
    // cost, fingerprint, dependency count, fill id
    h.extend_from_slice(&[0u8; 4 + 8 + 2 + 8]);
    assert_eq!(h.len(), HEADER_LEN);
    h
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        decode_untrusted(&bytes);
    }

    #[test]
    fn random_payloads_behind_a_valid_header_never_panic(
        kind in 0u8..2,
        payload in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut bytes = header(kind);
        bytes.extend_from_slice(&payload);
        decode_untrusted(&bytes);
    }

    /// A valid response behind random fill and expiry times (a foreign value claiming to
    /// be fresh until the year 500,000,000): served without a panic, whatever they are.
    #[test]
    fn responses_with_random_times_never_panic(
        filled_at in any::<u64>(),
        fresh_for in prop_oneof![any::<u64>(), 0u64..10_000_000],
        cache_control in prop_oneof![Just(""), Just("max-age=5"), Just("public")],
    ) {
        let mut bytes = header(1);
        bytes[6..14].copy_from_slice(&filled_at.to_le_bytes());
        let fresh_until = filled_at.saturating_add(fresh_for);
        bytes[14..22].copy_from_slice(&fresh_until.to_le_bytes());
        let mut payload = vec![200, 0];
        let headers: &[(&str, &str)] = if cache_control.is_empty() {
            &[]
        } else {
            &[("cache-control", cache_control)]
        };
        payload.extend_from_slice(&(headers.len() as u16).to_le_bytes());
        for (name, value) in headers {
            payload.extend_from_slice(&(name.len() as u16).to_le_bytes());
            payload.extend_from_slice(name.as_bytes());
            payload.extend_from_slice(&(value.len() as u32).to_le_bytes());
            payload.extend_from_slice(value.as_bytes());
        }
        payload.extend_from_slice(b"body");
        bytes.extend_from_slice(&payload);
        prop_assert_eq!(decode_untrusted(&bytes), 1);
    }

    /// Random dependency records: lengths that overrun, names that are not UTF-8.
    #[test]
    fn random_dependencies_never_panic(
        n in 0u16..20,
        records in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut bytes = header(0);
        bytes[34..36].copy_from_slice(&n.to_le_bytes());
        bytes.extend_from_slice(&records);
        decode_untrusted(&bytes);
    }

    /// With the `lz4` feature, a header flagged as compressed sends random bytes through the
    /// decompressor (without it, the flag makes the value a miss).
    #[test]
    fn random_compressed_payloads_never_panic(
        kind in 0u8..2,
        payload in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut bytes = header(kind);
        bytes[4] = 1;
        bytes.extend_from_slice(&payload);
        decode_untrusted(&bytes);
    }
}

#[test]
fn huge_declared_lengths_do_not_allocate() {
    // msgpack array32 / bin32 / str32 claiming 4 GiB of elements.
    for prefix in [
        &[0xdd, 0xff, 0xff, 0xff, 0xff][..],
        &[0xc6, 0xff, 0xff, 0xff, 0xff],
        &[0xdb, 0xff, 0xff, 0xff, 0xff],
    ] {
        let mut bytes = header(0);
        bytes.extend_from_slice(prefix);
        assert_eq!(decode_untrusted(&bytes), 0);
    }
    // A response claiming 65,535 headers of 4 GiB values.
    let mut bytes = header(1);
    bytes.extend_from_slice(&[200, 0, 0xff, 0xff, 1, 0, b'a', 0xff, 0xff, 0xff, 0xff]);
    assert_eq!(decode_untrusted(&bytes), 0);
    // An lz4 payload claiming 4 GiB once decompressed.
    let mut bytes = header(0);
    bytes[4] = 1;
    bytes.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x10, b'x']);
    assert_eq!(decode_untrusted(&bytes), 0);
}

#[test]
fn valid_values_decode() {
    let mut bytes = header(0);
    // msgpack fixstr "hi"
    bytes.extend_from_slice(&[0xa2, b'h', b'i']);
    assert!(decode_untrusted(&bytes) >= 1);
    // A 200 response with one header `a: b` and the body `hi`.
    let mut bytes = header(1);
    bytes.extend_from_slice(&[200, 0, 1, 0, 1, 0, b'a', 1, 0, 0, 0, b'b', b'h', b'i']);
    assert_eq!(decode_untrusted(&bytes), 1);
}
