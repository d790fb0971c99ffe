//! Fuzzes the value decoder: envelope header, then every codec and the HTTP response
//! layout, on arbitrary bytes; a response that opens is then served every way a hit is
//! (full, HEAD, `304`), with whatever fill and expiry times its header claims.
//!
//! ```text
//! cargo install cargo-fuzz
//! cd cache-runtime && cargo +nightly fuzz run decode -- -max_total_time=60 -rss_limit_mb=512
//! ```
//! cargo-fuzz needs a nightly compiler; where only stable exists, `RUSTC_BOOTSTRAP=1 cargo
//! fuzz run decode ...` works. Last run (2026-11-26, 2 cores): 60 s with AddressSanitizer,
//! 2.28 M inputs, and 60 s without a sanitizer, 21.3 M inputs: no crash, no leak, RSS under
//! 512 MB. The same entry point runs in CI as a property test
//! (`tests/tests/decoder_untrusted.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cache_runtime::fuzz::decode_untrusted(data);
});
