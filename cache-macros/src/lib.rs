//! Attribute macros of the caching toolkit: `#[cached_query]` and `#[cached_view]`.
//!
//! Use them through `cache-runtime`, which re-exports them (`use cache_runtime::cached_query;`)
//! and holds everything they call: this crate only parses, checks and expands. The expansion
//! reaches the runtime through `cache_runtime::__private` and stays short enough to read in
//! `cargo expand`.

#![warn(missing_docs)]

use proc_macro::TokenStream;

mod attr;
mod check;
mod item;
mod query;
mod template;
mod view;

/// Caches the return value of an `async fn` or a blocking `fn` (a database query, a remote
/// call) in the [`Cache`](https://docs.rs/cache-runtime) installed by `cache_runtime::install`.
///
/// ```
/// use cache_runtime::{Cache, cached_query};
/// # struct SqlitePool;
/// # #[derive(Debug)] struct DbError;
/// #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
/// struct User { id: i64, name: String }
///
/// #[cached_query(key = "user:{id}", version = 2, ttl = 60, tags = ["users", "user:{id}"], skip(db))]
/// async fn get_user(db: &SqlitePool, id: i64) -> Result<User, DbError> {
///     // sqlx::query_as("SELECT * FROM users WHERE id = ?").bind(id).fetch_one(db).await
///     Ok(User { id, name: "Ada".into() })
/// }
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// cache_runtime::install(Cache::from_url("memory://").await.unwrap());
/// let db = SqlitePool;
/// get_user(&db, 42).await.unwrap(); // miss: runs the body, stores the user under ":2:user:42"
/// get_user(&db, 42).await.unwrap(); // hit
/// get_user_invalidate(42).await.unwrap(); // after an UPDATE: this user's entry only
/// # });
/// ```
///
/// The first call with a given `id` runs the body and stores its value; later calls with the
/// same `id` return the stored value until it expires or is invalidated. For a `Result`, only
/// `Ok` values are stored; an `Err` is returned and the next call runs the body again. Any
/// other type is stored as is (an `Option`'s `None` too). The value must implement `Serialize`
/// and `DeserializeOwned`; the key's and the tags' arguments must implement `Serialize`. A
/// cache that fails (Redis down, timeout, undecodable value) never fails the call: the body
/// runs and its result is returned.
///
/// A hit hands out the stored value decoded from its bytes or, when the value's type is
/// `Clone + Send + Sync + 'static`, a clone of the value decoded once per copy this process
/// keeps (local copies, the L1; `CacheBuilder::local_copies`), as moka and the `cached`
/// crate hand out clones of what they keep: an `Arc<T>` is handed out without copying `T`.
/// A type whose clones share mutable state (an `Arc<Mutex<_>>` field) shares it between the
/// callers served by one copy; a type that is not `Clone` is decoded on every hit.
///
/// # Arguments
///
/// All are optional.
///
/// - `key = "user:{id}"`: the key's name. `{name}` placeholders insert the parameter `name`
///   (its serde encoding, injective); in a key each placeholder must be followed by `:` or end
///   the key (`"{a}:{b}"`, not `"{a}-{b}"`). With a template, the key's arguments are the
///   placeholders. Without one, the key is named by the function's module path and name, and its
///   arguments are every parameter but `self`, `_` and those in `skip(...)`.
/// - `version = 2` (default 1): bump it when the value's meaning or shape changes; entries of
///   other versions are never read again and expire by their TTL.
/// - `ttl = 600`: time to live in seconds (a positive integer literal). Default: the cache's.
/// - `tags = ["users", "user:{id}"]`: tags to invalidate entries by (see below). `{name}`
///   placeholders name parameters, skipped ones included, anywhere in the tag.
/// - `skip(db, client)`: parameters that are not part of the key (connections, clients,
///   handles). A destructured parameter (`State(db): State<Pool>`) is skipped by naming one of
///   the names it binds.
/// - `cache = crate::caches::sessions`: a `fn() -> cache_runtime::Cache` to use instead of the
///   installed cache.
/// - `codec = postcard`: how values are encoded: `msgpack` (the default: compact MessagePack,
///   safe across deploys, see `cache_runtime::codec`), `postcard`, `bincode`, `json` (each
///   behind the cache-runtime feature of the same name), or the path of a type implementing
///   `cache_runtime::codec::Codec`.
/// - `lease = false`: on a miss, every process fills on its own instead of one process in the
///   fleet filling while the others wait for its value (leases are on unless the cache turns
///   them off, `CacheBuilder::leases`; `memory://` never takes any).
/// - `early = 1.0`: refresh a value before it expires, with a probability that rises as its
///   expiry nears and with its fill's cost (XFetch, β = 1.0; larger refreshes sooner): one
///   call recomputes while the others are served the value.
/// - `stale = 30`: for 30 s after expiry, serve the old value at once while one call refreshes
///   it, and in place of a refresh that fails (`Err`). An invalidated value is never served.
///
/// Not supported yet: generic functions (lifetimes are fine), functions that return `()`. `self` is never part of the key: in a method, add what distinguishes `self` to
/// the key explicitly.
///
/// # Sync functions (Diesel, blocking clients)
///
/// On a sync `fn` the call blocks: the same lookup, keys, codecs, generations, single-flight
/// (a blocking wait), leases and fail-open timeouts, driven on the caller's thread with no
/// tokio runtime needed (`memory://` directly, Redis through a small pool of synchronous
/// connections). A value filled by a sync function is a hit for an async one with the same
/// key and the other way round, and a sync function calling cached functions follows them
/// like a page does. Its companions are sync too.
///
/// ```
/// use cache_runtime::{Cache, cached_query};
/// # struct SqliteConnection;
/// # type QueryResult<T> = Result<T, String>;
///
/// #[cached_query(key = "user:{id}", skip(conn))]
/// fn user(conn: &mut SqliteConnection, id: i64) -> QueryResult<String> {
///     // users.find(id).select(name).first(conn)
///     Ok(format!("user {id}"))
/// }
///
/// let cache = cache_runtime::block_on(Cache::from_url("memory://")).unwrap();
/// cache_runtime::install(cache.clone());
/// let mut conn = SqliteConnection;
/// assert_eq!(user(&mut conn, 7).unwrap(), "user 7"); // miss
/// assert_eq!(user(&mut conn, 7).unwrap(), "user 7"); // hit
/// user_invalidate(7).unwrap(); // sync, like the function
/// assert_eq!(cache.stats().hits, 1);
/// ```
///
/// The body becomes a closure, `move || -> ReturnType { body }`, called through
/// `cache_runtime::__private::cached_result_blocking` (or `cached_value_blocking`); the
/// companions call `invalidate_entry_blocking` and `invalidate_query_blocking`. From async code,
/// call a sync cached function through `cache_runtime::spawn_blocking(move || user(&mut conn,
/// 7))`: like `tokio::task::spawn_blocking`, it keeps the blocking call off the runtime's
/// workers, and the page calling it still follows what it read (a direct call works too, but
/// blocks its worker for the call).
///
/// # Invalidation
///
/// Next to the function, with its visibility, the macro generates two companions:
///
/// - `get_user_invalidate(id).await?` invalidates the entry `get_user(&db, id)` uses. It takes
///   the parameters that form the key, with the function's types: the template's placeholders
///   in template order, each once (without a template: every parameter but `self`, `_` and the
///   skipped ones). When a tag interpolates a parameter that is not in the key, the companion
///   takes it too, after the key's parameters (it builds the same key; any value invalidates
///   the same entry). Skipped parameters that no tag uses never appear.
/// - `get_user_invalidate_all().await?` invalidates every entry of `get_user`, in O(1).
///
/// For a method they are associated functions without a receiver:
/// `Repo::get_user_invalidate(id)`. A trait `impl` cannot hold extra items (rustc would
/// report that `get_user_invalidate` is not a member of the trait): there, write
/// `companions = false` and invalidate through tags (`cache.invalidate_tag(..)`).
///
/// A method (a function with a receiver, or naming `Self` in its signature) and its
/// companions share one hidden associated `const` holding the function's description; any
/// other function (free, or associated without `self`) has it as a `static` in each body,
/// since a macro cannot see whether an `impl` surrounds it.
///
/// Both return `cache_runtime::Result<()>`: unlike a read, an invalidation that did not
/// happen is an error, because what it names may still be served; retry it, or report the
/// failure instead of treating the write as done.
///
/// Tags: `cache.invalidate_tag("user:42").await?` invalidates, in O(1), every entry whose tags
/// included `"user:42"` when it was filled, across functions. A tag's placeholders are filled
/// with the same injective encoding as keys (the table in `cache_runtime::key`): `42` → `42`,
/// `"a:b"` → `a%3Ab`, `"42"` → `'42`. So `tags = ["user:{id}"]` with `id = 42` is the tag
/// `"user:42"`, and with `id = "a:b"` the tag `"user:a%3Ab"`: build the tag of a string value
/// with `cache_runtime::key::encode_value`, not with `format!` on the raw string.
///
/// ```text
/// sqlx::query("UPDATE users SET name = ? WHERE id = ?").bind(name).bind(42).execute(&db).await?;
/// get_user_invalidate(42).await?; // this user's entry only
/// cache.invalidate_tag("users").await?; // every entry tagged "users"
/// ```
///
/// # Equivalent code without the macro
///
/// The example above expands to (every item keeps the function's `#[cfg]`s):
///
/// ```text
/// async fn get_user(db: &SqlitePool, id: i64) -> Result<User, sqlx::Error> {
///     // The function's description. In a method it is one hidden associated `const`, shared
///     // with the companions and named `Self::__CACHE_SPEC_GET_USER`.
///     static __CACHE_SPEC: ::cache_runtime::__private::QuerySpec = ::cache_runtime::__private::QuerySpec {
///         function: ::core::concat!(::core::module_path!(), "::", "get_user"),
///         template: ::core::option::Option::Some(&["user:", ""]),
///         version: 2,
///         ttl: ::core::option::Option::Some(60),
///         tags: &[&["users"], &["user:", ""]],
///         cache: ::core::option::Option::None,
///         lease: ::core::option::Option::None,
///         early: ::core::option::Option::None,
///         stale: ::core::option::Option::None,
///     };
///     // The key's arguments, then the tags' (one per placeholder, in order across the tags).
///     let __cache_key = ::cache_runtime::__private::Key::new(&__CACHE_SPEC, &(&id,), &(&id,));
///     // Spanned at `User`: if it cannot be cached, the error points there.
///     ::cache_runtime::__private::cached_result::<_, _, ::cache_runtime::codec::CacheDefault, _>(
///         &__CACHE_SPEC,
///         __cache_key,
///         // `Some` when `User` is `Clone`: then a value kept in memory (a local copy, the
///         // L1, a leader's value for its followers) is decoded once and handed out as clones.
///         {
///             use ::cache_runtime::__private::{ShareClone as _, ShareNone as _};
///             (&::cache_runtime::__private::Probe::<User>::NEW).sharing()
///         },
///         // The body, unchanged: `return` and `?` stay inside it.
///         async move {
///             sqlx::query_as("SELECT * FROM users WHERE id = ?").bind(id).fetch_one(db).await
///         },
///     )
///     .await
/// }
///
/// /// Invalidates the entry a call of `get_user` with the same arguments would use: ...
/// // Plus only the lints the copied signature trips: `unused_mut` and `unused_variables` for a
/// // destructured parameter taken whole, the lifetime lints when lifetimes are copied,
/// // `clippy::too_many_arguments` past 7 parameters, `clippy::future_not_send` unless every
/// // parameter is plainly `Send`, `non_snake_case` for a name that is not.
/// #[allow(dead_code)]
/// async fn get_user_invalidate(id: i64) -> ::cache_runtime::Result<()> {
///     static __CACHE_SPEC: ::cache_runtime::__private::QuerySpec = /* the same */;
///     ::cache_runtime::__private::invalidate_entry(
///         &__CACHE_SPEC,
///         ::cache_runtime::__private::Key::new(&__CACHE_SPEC, &(&id,), &(&id,)),
///     )
///     .await
/// }
///
/// /// Invalidates every entry of `get_user`, whatever its arguments, in O(1): ...
/// #[allow(dead_code)]
/// async fn get_user_invalidate_all() -> ::cache_runtime::Result<()> {
///     static __CACHE_SPEC: ::cache_runtime::__private::QuerySpec = /* the same */;
///     ::cache_runtime::__private::invalidate_query(&__CACHE_SPEC).await
/// }
/// ```
///
/// A function whose return type's last path segment does not end in `Result` (`Result<T, E>`,
/// `io::Result<T>`, Diesel's `QueryResult<T>` do) calls
/// `cached_value::<_, Codec, _>` instead, and caches its whole return value.
#[proc_macro_attribute]
pub fn cached_query(args: TokenStream, item: TokenStream) -> TokenStream {
    query::cached_query(args.into(), item.into()).into()
}

/// Caches whole HTTP responses of an axum handler, with Django `cache_page` semantics.
///
/// ```
/// use axum::{Router, extract::State, response::Html, routing::get};
/// use cache_runtime::cached_view;
/// # #[derive(Clone)] struct SqlitePool;
///
/// #[cached_view(ttl = 900, vary = ["Accept-Language"], tags = ["users"])]
/// async fn users_page(State(db): State<SqlitePool>) -> Html<String> {
///     Html("<ul><li>Ada</li></ul>".to_string())
/// }
///
/// // Registered as before; `users_page_invalidate(path)` and `users_page_invalidate_all()`
/// // come with it.
/// let app: Router = Router::new().route("/users", get(users_page)).with_state(SqlitePool);
/// ```
///
/// Arguments: `ttl = SECS` (default: the cache's), `version = N` (default 1),
/// `vary = ["Header", ...]` (request headers that are part of the key),
/// `statuses = [200, ...]` (statuses that are stored; default `[200]`),
/// `tags = ["users", ...]` (literal tags: `cache.invalidate_tag("users")` invalidates the
/// page; they cannot interpolate parameters), `cache = path::to::fn` (a `fn() -> Cache`),
/// `lease = false`, `early = 1.0` and `stale = SECS` (as for `#[cached_query]`; a refresh that
/// fails is an error or a 5xx, and stored responses carry `stale-while-revalidate` and
/// `stale-if-error` in `Cache-Control`; a response saying `must-revalidate`,
/// `proxy-revalidate` or `s-maxage` is never served stale).
/// The key is the method (HEAD shares GET's entry), scheme, host, path and query, and the
/// `vary` headers. The storage rules (no `Set-Cookie`, no `private`/`no-store`,
/// `Authorization` bypass, ...) are documented in `cache_runtime::view`.
///
/// A page also follows its data: the queries and tags of the `#[cached_query]` functions its
/// fill called are recorded with it, so invalidating one of them invalidates the page too. A
/// per-user page needs no `"user:{id}"` tag on the view: tag the query it calls.
///
/// # Invalidation
///
/// Two companions are generated next to the handler, with its visibility:
/// `users_page_invalidate("/users").await?` invalidates the responses cached for one path,
/// with every query string and spelling of it (every host and `vary` value), and
/// `users_page_invalidate_all().await?` every response
/// of the handler, in O(1). Both return `cache_runtime::Result<()>`: an error means the
/// invalidation did not happen; retry it, or report the failure.
///
/// # Equivalent code without the macro
///
/// ```text
/// async fn users_page(
///     __cache_req: ::cache_runtime::__private::ViewRequest,
///     State(db): State<SqlitePool>,
/// ) -> ::cache_runtime::__private::ViewResponse {
///     static __CACHE_SPEC: ::cache_runtime::__private::ViewSpec = ::cache_runtime::__private::ViewSpec {
///         function: ::core::concat!(::core::module_path!(), "::", "users_page"),
///         version: 1,
///         ttl: ::core::option::Option::Some(900),
///         vary: &["Accept-Language"],
///         statuses: &[],
///         tags: &["users"],
///         cache: ::core::option::Option::None,
///     };
///     ::cache_runtime::__private::cached_view(&__CACHE_SPEC, __cache_req, async move {
///         // The declared return type still types the body (an `impl Trait` one through a
///         // function with the same bounds).
///         let __cache_ret: Html<String> = { /* render */ };
///         __cache_ret
///     })
///     .await
/// }
///
/// /// Invalidates the responses `users_page` cached for one URL: ...
/// #[allow(dead_code)]
/// async fn users_page_invalidate(path_and_query: &str) -> ::cache_runtime::Result<()> {
///     static __CACHE_SPEC: ::cache_runtime::__private::ViewSpec = /* the same */;
///     ::cache_runtime::__private::invalidate_view_path(&__CACHE_SPEC, path_and_query).await
/// }
///
/// /// Invalidates every response `users_page` cached, all URLs and `vary` values, in O(1): ...
/// #[allow(dead_code)]
/// async fn users_page_invalidate_all() -> ::cache_runtime::Result<()> {
///     static __CACHE_SPEC: ::cache_runtime::__private::ViewSpec = /* the same */;
///     ::cache_runtime::__private::invalidate_view(&__CACHE_SPEC).await
/// }
/// ```
#[proc_macro_attribute]
pub fn cached_view(args: TokenStream, item: TokenStream) -> TokenStream {
    view::cached_view(args.into(), item.into()).into()
}
