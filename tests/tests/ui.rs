//! Compile-time behaviour of `#[cached_query]` and `#[cached_view]` (their invalidation
//! companions included): what compiles, and the one clear error each misuse gives. Pass files
//! also run. Regenerate the expected errors with
//! `TRYBUILD=overwrite cargo test -p cache-tests --test ui`, then read every `.stderr`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("ui/pass/*.rs");
    t.compile_fail("ui/fail/*.rs");
}
