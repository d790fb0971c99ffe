//! Runnable examples of `cache-runtime` live beside this file; see `Cargo.toml`.
