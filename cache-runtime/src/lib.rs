//! Caching for async Rust web apps, driven by attribute macros: `#[cached_query]` caches a
//! function's result, `#[cached_view]` a whole HTTP response, in Redis or in memory.
//!
//! ```
//! use cache_runtime::{cached_query, Cache};
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct User { id: u32, name: String }
//!
//! #[cached_query(key = "user:{id}", ttl = 600)]
//! async fn user(id: u32) -> Option<User> {
//!     // ... a database query ...
//!     Some(User { id, name: "Ada".into() })
//! }
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let url = std::env::var("CACHE_URL").unwrap_or("memory://".into());
//! cache_runtime::install(Cache::from_url(&url).await.unwrap());
//! user(1).await; // miss: runs the body, stores the result under ":1:user:1"
//! user(1).await; // hit: the body does not run
//! assert_eq!(cache_runtime::current().unwrap().stats().hits, 1);
//! # });
//! ```
//!
//! What the runtime owns: key encoding ([`key`]), codecs and the value envelope
//! ([`codec`]), the `memory://` and `redis://` backends, per-process single-flight,
//! timeouts and a circuit breaker (a failing cache is a miss, never an error), and
//! [`Stats`]. Users bump `version` in the attribute to invalidate.
//!
//! Operating a cache: metrics (latency histograms, bytes, counters by query or view name)
//! through the `metrics` facade and spans through `tracing` (see `docs/OPERATIONS.md`),
//! [`admin`] (invalidate by name, list keys, read one value: what `cachectl` runs), and a
//! live dashboard (`dashboard`, feature `dashboard`).
#![warn(missing_docs)]

pub mod admin;
mod backend;
mod blocking;
mod breaker;
mod cache;
pub mod codec;
mod copies;
#[cfg(feature = "dashboard")]
pub mod dashboard;
mod deps;
mod envelope;
mod error;
mod events;
mod fill;
mod flight;
mod freshness;
#[cfg(feature = "fuzz")]
#[doc(hidden)]
pub mod fuzz;
mod invalidate;
pub mod key;
mod l1;
mod lease;
mod meters;
mod observe;
mod query;
mod schema;
mod share;
mod stats;
mod value;
#[cfg(feature = "view")]
pub mod view;
#[cfg(not(feature = "actix"))]
mod view_disabled;

pub use backend::MAX_TTL;
pub use blocking::block_on;
pub use cache::Cache;
pub use cache::builder::{
    CacheBuilder, DEFAULT_L1_TRUST, DEFAULT_LEASE_TTL, DEFAULT_LOCAL_COPIES_BYTES,
    DEFAULT_MAX_VALUE_SIZE, DEFAULT_MEMORY_BYTES, DEFAULT_TIMEOUT, DEFAULT_TTL,
};
pub use cache::default::{current, install, installed, scope, scope_blocking, spawn_blocking};
pub use cache_macros::{cached_query, cached_view};
pub use error::{Error, ErrorKind, Result};
pub use stats::Stats;

/// Entry points for generated code, and nothing else. Not a public API: it changes without
/// notice.
#[doc(hidden)]
pub mod __private {
    pub use crate::query::{
        Cacheable, Key, QuerySpec, cached_result, cached_result_blocking, cached_value,
        cached_value_blocking, invalidate_entry, invalidate_entry_blocking, invalidate_query,
        invalidate_query_blocking,
    };
    pub use crate::share::{Probe, ShareClone, ShareNone, Sharing};
    #[cfg(feature = "axum")]
    pub use crate::view::cached_view;
    /// The return type of an expanded `#[cached_view]` handler.
    #[cfg(feature = "axum")]
    pub type ViewResponse = axum::response::Response;
    /// The first argument of an expanded `#[cached_view(actix)]` handler.
    #[cfg(feature = "actix")]
    pub use crate::view::actix::ActixViewRequest;
    /// The entry point of an expanded `#[cached_view(actix)]` handler.
    #[cfg(feature = "actix")]
    pub use crate::view::actix::cached_view as cached_actix_view;
    /// The return type of an expanded `#[cached_view(actix)]` handler.
    #[cfg(feature = "actix")]
    pub type ActixViewResponse = actix_web::HttpResponse;
    #[cfg(feature = "view")]
    pub use crate::view::{
        ViewRequest, ViewSpec, invalidate_spec as invalidate_view,
        invalidate_spec_path as invalidate_view_path,
    };
    #[cfg(not(feature = "actix"))]
    pub use crate::view_disabled::{ActixViewRequest, ActixViewResponse, cached_actix_view};
}
