//! Operating a cache by hand: invalidate by name, list what is stored, read one value. What
//! `cachectl` and the dashboard run; the same keys, generations and Redis commands as the
//! cached calls themselves (plus `STRLEN` and `PTTL` for sizes and TTLs), so the ACL user of
//! the app works for them too.
//!
//! Names are those in keys and metrics: a query's function path (`app::users::active`), or
//! for a query with a `key` template the template's head (`"user:{id}"` → `user`); a view's
//! function path (`layer` for a `CacheLayer`).
//!
//! ```
//! use cache_runtime::{admin, cached_query, Cache};
//!
//! #[cached_query(key = "user:{id}", ttl = 60, tags = ["users"])]
//! async fn user(id: u32) -> String { format!("user {id}") }
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let cache = Cache::builder("memory://").prefix("app").build().await?;
//! cache_runtime::scope(cache.clone(), async {
//!     user(1).await;
//!     user(2).await;
//! }).await;
//!
//! let keys = admin::keys(&cache, "user", |_| {}).await?;
//! assert_eq!(keys.len(), 2);
//! assert!(keys[0].key.starts_with("app:1:user:"));
//!
//! let value = admin::get(&cache, &keys[0].key).await?.unwrap();
//! assert!(value["value"].as_str().unwrap().starts_with("user "));
//!
//! admin::invalidate(&cache, &admin::Target::Tag("users".into())).await?;
//! let value = admin::get(&cache, &keys[0].key).await?.unwrap();
//! assert_eq!(value["current"], false, "invalidated: it is never served again");
//! # Ok::<(), cache_runtime::Error>(())
//! # }).unwrap();
//! ```

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value as Json, json};

use crate::backend::{Backend, KeyInfo};
use crate::cache::Cache;
use crate::envelope::{self, Kind, Opened};
use crate::error::{Error, ErrorKind, Result};
use crate::events::Site;
use crate::key::{Stored, generation};

/// Keys asked for per `SCAN` page.
const SCAN_COUNT: usize = 1000;
/// Most bytes of a response body [`get`] shows.
#[cfg(feature = "view")]
const BODY_SHOWN: usize = 64 * 1024;

/// What to invalidate.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Target {
    /// Every value carrying a tag (`tags = ["users"]`), like [`Cache::invalidate_tag`].
    Tag(String),
    /// Every entry of a query function, by its path (`app::users::active`).
    Query(String),
    /// Every response of a view, by its function path (`layer` for a `CacheLayer`).
    #[cfg(feature = "view")]
    View(String),
    /// The responses of a view for one path and query (`/users?page=2`).
    #[cfg(feature = "view")]
    Path {
        /// The view's function path.
        view: String,
        /// The request's path and query.
        path: String,
    },
    /// Every value of the cache, like [`Cache::invalidate_all`].
    All,
}

impl Target {
    /// The generation counter this target replaces.
    fn generation(&self) -> String {
        match self {
            Target::Tag(tag) => generation::tag(tag),
            Target::Query(function) => generation::query(function),
            #[cfg(feature = "view")]
            Target::View(function) => generation::view(function),
            #[cfg(feature = "view")]
            Target::Path { view, path } => crate::view::path_generation(view, path),
            Target::All => generation::ALL.to_owned(),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Tag(tag) => write!(f, "tag {tag}"),
            Target::Query(function) => write!(f, "query {function}"),
            #[cfg(feature = "view")]
            Target::View(function) => write!(f, "view {function}"),
            #[cfg(feature = "view")]
            Target::Path { view, path } => write!(f, "path {path} of view {view}"),
            Target::All => f.write_str("everything"),
        }
    }
}

/// Invalidates `target` in one write, as the generated companions and
/// [`Cache::invalidate_tag`] do: values filled before this returns are never served after
/// it. The caller's file and line are what the dashboard lists as the call site.
///
/// An error means the invalidation may not have happened.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use cache_runtime::admin::{invalidate, Target};
///
/// let cache = cache_runtime::Cache::from_url("memory://").await?;
/// invalidate(&cache, &Target::Query("app::users::active".into())).await?;
/// invalidate(&cache, &Target::Path { view: "app::views::page".into(), path: "/users?page=2".into() }).await?;
/// # Ok::<(), cache_runtime::Error>(())
/// # }).unwrap();
/// ```
#[track_caller]
pub fn invalidate<'a>(
    cache: &'a Cache,
    target: &'a Target,
) -> impl Future<Output = Result<()>> + Send + 'a {
    invalidate_from(cache, target, Site::At(std::panic::Location::caller()))
}

/// [`invalidate`], asked for at `site`.
pub(crate) async fn invalidate_from(cache: &Cache, target: &Target, site: Site) -> Result<()> {
    cache.bump_from(&target.generation(), None, site).await
}

/// Checks that the backend answers (Redis: `PING`, within the cache's timeout): a cache
/// builds without a reachable Redis, a tool wants to know.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let down = cache_runtime::Cache::from_url("redis://127.0.0.1:1/0").await?;
/// let err = cache_runtime::admin::ping(&down).await.unwrap_err();
/// assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
/// # Ok::<(), cache_runtime::Error>(())
/// # }).unwrap();
/// ```
pub async fn ping(cache: &Cache) -> Result<()> {
    cache.inner.backend.ping().await.map_err(|e| {
        Error::with_source(
            e.kind(),
            format!("cannot reach the cache backend {}", cache.inner.location),
            e,
        )
    })
}

/// Where a long listing is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// `SCAN` pages read so far.
    pub pages: u64,
    /// Keys seen so far.
    pub seen: u64,
    /// Keys kept so far.
    pub kept: u64,
}

/// What a stored key holds, by the shape of the key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Holds {
    /// A query's value (or a `Cache::set` value), by name.
    Value(String),
    /// A view's response, by the view's function path.
    View(String),
    /// A generation counter, by name (`q:app::users`, `t:users`, `all`, ...).
    Generation(String),
    /// Something else under the prefix.
    Other,
}

/// One stored key, from [`keys`] or [`summary`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoredKey {
    /// The whole key, prefix included: what [`get`] takes.
    pub key: String,
    /// What it holds.
    pub holds: Holds,
    /// Bytes stored.
    pub size: u64,
    /// Time left before it expires (`None`: it does not).
    pub ttl: Option<Duration>,
}

/// Reads every key under the cache's prefix whose key contains `contains`, page by page
/// (`SCAN`, never `KEYS`), calling `progress` after each page.
/// Stops after the page that reaches `limit` keys seen.
async fn scan(
    cache: &Cache,
    contains: &str,
    limit: u64,
    mut keep: impl FnMut(&StoredKey) -> bool,
    mut progress: impl FnMut(Progress),
) -> Result<Vec<StoredKey>> {
    let layout = &cache.inner.layout;
    let mut cursor = 0;
    let mut at = Progress::default();
    let mut kept = Vec::new();
    loop {
        let page = cache
            .inner
            .backend
            .scan(
                layout.root().to_owned(),
                contains.to_owned(),
                cursor,
                SCAN_COUNT,
            )
            .await?;
        at.pages += 1;
        at.seen += page.keys.len() as u64;
        for KeyInfo { key, size, ttl } in page.keys {
            let holds = match layout.read(&key) {
                Some(Stored::Value(name)) => Holds::Value(name.to_owned()),
                Some(Stored::View(name)) => Holds::View(name.to_owned()),
                Some(Stored::Generation(name)) => Holds::Generation(name.to_owned()),
                Some(Stored::Other) | None => Holds::Other,
            };
            let key = StoredKey {
                key,
                holds,
                size,
                ttl,
            };
            if keep(&key) {
                kept.push(key);
            }
        }
        at.kept = kept.len() as u64;
        progress(at);
        if page.cursor == 0 || at.seen >= limit {
            kept.sort_by(|a, b| a.key.cmp(&b.key));
            return Ok(kept);
        }
        cursor = page.cursor;
    }
}

/// The entries of one query or view (see [the module](self) for names), sorted by key,
/// with their sizes and TTLs. `progress` is called after each `SCAN` page.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let cache = cache_runtime::Cache::from_url("memory://").await?;
/// cache.set("greeting", &"hello", None).await?;
/// let keys = cache_runtime::admin::keys(&cache, "greeting", |_| {}).await?;
/// assert_eq!(keys[0].key, ":1:greeting");
/// assert!(keys[0].ttl.unwrap() <= std::time::Duration::from_secs(300));
/// # Ok::<(), cache_runtime::Error>(())
/// # }).unwrap();
/// ```
pub async fn keys(
    cache: &Cache,
    name: &str,
    progress: impl FnMut(Progress),
) -> Result<Vec<StoredKey>> {
    let keep =
        |key: &StoredKey| matches!(&key.holds, Holds::Value(n) | Holds::View(n) if n == name);
    scan(cache, name, u64::MAX, keep, progress).await
}

/// What is stored under a cache's prefix, per name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Summary {
    /// Per query or view name (views as `view:{function}`): entries and bytes.
    pub names: BTreeMap<String, Usage>,
    /// Generation counters.
    pub generations: Usage,
    /// Other keys under the prefix.
    pub other: Usage,
    /// Whether every key under the prefix was counted (a dashboard counts the first
    /// 100,000 or so).
    pub complete: bool,
}

/// A number of keys and their bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Usage {
    /// Keys.
    pub entries: u64,
    /// Bytes of their values.
    pub bytes: u64,
}

impl Usage {
    fn add(&mut self, size: u64) {
        self.entries += 1;
        self.bytes += size;
    }
}

/// Entries and bytes per name under the cache's prefix: one pass of `SCAN` over it.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let cache = cache_runtime::Cache::from_url("memory://").await?;
/// cache.set("a", &1, None).await?;
/// let summary = cache_runtime::admin::summary(&cache, |_| {}).await?;
/// assert_eq!(summary.names["a"].entries, 1);
/// assert_eq!(summary.generations.entries, 1); // `all`
/// # Ok::<(), cache_runtime::Error>(())
/// # }).unwrap();
/// ```
pub async fn summary(cache: &Cache, progress: impl FnMut(Progress)) -> Result<Summary> {
    summary_of_first(cache, u64::MAX, progress).await
}

/// [`summary`] of the first `limit` keys or so (the `SCAN` page that reaches it is the last
/// read); [`Summary::complete`] says whether that was all.
pub(crate) async fn summary_of_first(
    cache: &Cache,
    limit: u64,
    mut progress: impl FnMut(Progress),
) -> Result<Summary> {
    let mut summary = Summary::default();
    let mut seen = 0;
    scan(
        cache,
        "",
        limit,
        |key| {
            match &key.holds {
                Holds::Value(name) => summary.names.entry(name.clone()).or_default(),
                Holds::View(name) => summary.names.entry(format!("view:{name}")).or_default(),
                Holds::Generation(_) => &mut summary.generations,
                Holds::Other => &mut summary.other,
            }
            .add(key.size);
            false
        },
        |at| {
            seen = at.seen;
            progress(at);
        },
    )
    .await?;
    summary.complete = seen < limit;
    Ok(summary)
}

/// The value stored under `stored_key` (the whole key, as [`keys`] lists it), decoded for
/// reading: `None` when there is none. A JSON object:
///
/// | field | what |
/// |---|---|
/// | `key`, `size` | the key and its stored bytes |
/// | `kind` | `value`, `response`, `generation` or `foreign` (not written by this toolkit) |
/// | `codec` | `msgpack`, `postcard`, `bincode`, `json` or `custom:{id}` |
/// | `filled_at_unix_ms`, `fresh_for_ms`, `cost_us` | from the envelope |
/// | `depends_on` | `[{generation, recorded, current}]`: each generation it was filled under, and whether it still is |
/// | `current` | whether every one still is: false means it will never be served again |
/// | `value` | the payload as JSON when the codec is self-describing (MessagePack, JSON), else absent with a `note` |
/// | `response` | for a view: `status`, `headers`, `body` (text, up to 64 KiB) |
pub async fn get(cache: &Cache, stored_key: &str) -> Result<Option<Json>> {
    if cache.inner.layout.read(stored_key).is_none() {
        return Err(not_ours(cache, stored_key));
    }
    let backend = &cache.inner.backend;
    let Some(bytes) = backend
        .mget(vec![stored_key.to_owned()])
        .await?
        .pop()
        .flatten()
    else {
        return Ok(None);
    };
    let size = bytes.len();
    if let Some(Stored::Generation(_)) = cache.inner.layout.read(stored_key) {
        let generation = <[u8; 8]>::try_from(&bytes[..]).map(u64::from_le_bytes).ok();
        return Ok(Some(json!({
            "key": stored_key, "size": size, "kind": "generation", "generation": generation,
        })));
    }
    let Some(value) = envelope::open(bytes, cache.compression().limit) else {
        return Ok(Some(json!({
            "key": stored_key, "size": size, "kind": "foreign",
            "note": "not a value of this toolkit (or of another version of its format)",
        })));
    };
    let deps: Vec<(&str, u64)> = value.deps().collect();
    let layout = &cache.inner.layout;
    let names = deps.iter().map(|(n, _)| layout.generation(n)).collect();
    let now = backend.mget(names).await?;
    let depends_on: Vec<Json> = deps
        .iter()
        .zip(&now)
        .map(|((name, recorded), now)| {
            let current = now.as_deref() == Some(&recorded.to_le_bytes()[..]);
            json!({ "generation": name, "recorded": recorded, "current": current })
        })
        .collect();
    let header = &value.header;
    let mut out = json!({
        "key": stored_key,
        "size": size,
        "kind": if header.kind == Kind::Response { "response" } else { "value" },
        "codec": codec_name(header.codec, header.kind),
        "filled_at_unix_ms": header.filled_at_ms,
        "fresh_for_ms": header.fresh_until_ms.saturating_sub(envelope::now_ms()),
        "cost_us": header.cost_us,
        "current": depends_on.iter().all(|d| d["current"] == true),
        "depends_on": depends_on,
    });
    decode_payload(&value, &mut out);
    Ok(Some(out))
}

fn codec_name(id: u8, kind: Kind) -> String {
    match (kind, id) {
        (Kind::Response, _) => "response".into(),
        (_, 1) => "msgpack".into(),
        (_, 2) => "postcard".into(),
        (_, 3) => "bincode".into(),
        (_, 4) => "json".into(),
        (_, id) => format!("custom:{id}"),
    }
}

/// Adds `value` (or `response`) to `out`, or a `note` saying why it cannot be read.
fn decode_payload(value: &Opened, out: &mut Json) {
    let payload: &Bytes = &value.payload;
    if value.header.kind == Kind::Response {
        out["response"] = response(value).unwrap_or(Json::Null);
        return;
    }
    let decoded = match value.header.codec {
        1 => rmp_serde::from_slice::<Json>(payload).map_err(|e| e.to_string()),
        4 => serde_json::from_slice::<Json>(payload).map_err(|e| e.to_string()),
        2 | 3 => Err(
            "this codec does not describe its values: only the program that wrote it can decode it"
                .into(),
        ),
        _ => Err("a codec of the application's own".into()),
    };
    match decoded {
        Ok(decoded) => {
            out["value"] = decoded;
            if value.header.fingerprint != 0 {
                out["note"] = "positional MessagePack: structs are shown as arrays, fields in declaration order".into();
            }
        }
        Err(why) => {
            out["note"] = format!("{} payload bytes not shown: {why}", payload.len()).into()
        }
    }
}

#[cfg(feature = "view")]
fn response(value: &Opened) -> Option<Json> {
    let entry = crate::view::StoredResponse::open(value)?;
    let headers: Vec<Json> = entry
        .headers
        .iter()
        .map(|(name, value)| json!([name.as_str(), String::from_utf8_lossy(value.as_bytes())]))
        .collect();
    let shown = &entry.body[..entry.body.len().min(BODY_SHOWN)];
    Some(json!({
        "status": entry.status.as_u16(),
        "headers": headers,
        "body_bytes": entry.body.len(),
        "body": String::from_utf8_lossy(shown),
    }))
}

#[cfg(not(feature = "view"))]
fn response(_value: &Opened) -> Option<Json> {
    None
}

/// Deletes every key under the cache's prefix: [`Cache::clear`] (`SCAN` + `UNLINK`).
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let cache = cache_runtime::Cache::from_url("memory://").await?;
/// cache.set("a", &1, None).await?;
/// assert_eq!(cache_runtime::admin::clear(&cache).await?, 2);
/// # Ok::<(), cache_runtime::Error>(())
/// # }).unwrap();
/// ```
pub async fn clear(cache: &Cache) -> Result<u64> {
    cache.clear().await
}

/// An error for a key that is not under the cache's prefix.
fn not_ours(cache: &Cache, key: &str) -> Error {
    Error::new(
        ErrorKind::Config,
        format!(
            "`{key}` is not a key of this cache: its keys start with `{}`",
            cache.inner.layout.root()
        ),
    )
}
