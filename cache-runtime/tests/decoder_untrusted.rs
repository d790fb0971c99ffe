//! Stored bytes are untrusted: whatever Redis hands back, decoding is a miss or a value,
//! never a panic. (The same entry point is fuzzed by `fuzz/fuzz_targets/decode.rs`.)

use proptest::prelude::*;

/// A valid envelope header (format 1, MessagePack, no deps) to put random payloads behind.
fn header() -> Vec<u8> {
    let mut h = b"CR\x01\x01\x00\x00".to_vec();
    h.extend_from_slice(&[0u8; 12]);
    h.extend_from_slice(&[0, 0]);
    h
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        cache_runtime::__private::decode_untrusted(&bytes);
    }

    #[test]
    fn random_payloads_behind_a_valid_header_never_panic(payload in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut bytes = header();
        bytes.extend_from_slice(&payload);
        cache_runtime::__private::decode_untrusted(&bytes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// With the `lz4` feature, a header flagged as compressed sends random bytes through the
    /// decompressor (without it, the flag makes the value a miss).
    #[test]
    fn random_compressed_payloads_never_panic(payload in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut bytes = header();
        bytes[4] = 1;
        bytes.extend_from_slice(&payload);
        cache_runtime::__private::decode_untrusted(&bytes);
    }
}

#[test]
fn huge_declared_lengths_do_not_allocate() {
    let mut bytes = header();
    // msgpack array32 / bin32 / str32 claiming 4 GiB of elements.
    for prefix in [
        &[0xdd, 0xff, 0xff, 0xff, 0xff][..],
        &[0xc6, 0xff, 0xff, 0xff, 0xff],
        &[0xdb, 0xff, 0xff, 0xff, 0xff],
    ] {
        bytes.truncate(20);
        bytes.extend_from_slice(prefix);
        assert_eq!(cache_runtime::__private::decode_untrusted(&bytes), 0);
    }
}

#[test]
fn a_valid_value_decodes() {
    let mut bytes = header();
    // msgpack fixstr "hi"
    bytes.extend_from_slice(&[0xa2, b'h', b'i']);
    assert!(cache_runtime::__private::decode_untrusted(&bytes) >= 1);
}
