//! Fuzzes the value decoder: envelope header, then every codec, on arbitrary bytes.
//!
//! ```text
//! cargo install cargo-fuzz
//! cd cache-runtime && cargo fuzz run decode -- -max_total_time=60
//! ```
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cache_runtime::__private::decode_untrusted(data);
});
