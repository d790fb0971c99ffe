//! Attribute macros of the caching toolkit: `#[cached_query]` and `#[cached_view]`.
//!
//! Use them through `cache-runtime`, which re-exports them (`use cache_runtime::cached_query;`)
//! and holds everything they call: this crate only parses, checks and expands. The expansion
//! reaches the runtime through `cache_runtime::__private` and stays short enough to read in
//! `cargo expand`.

#![warn(missing_docs)]

use proc_macro::TokenStream;

mod args;
mod query;
mod view;

/// Caches the return value of an `async fn` (a database query, a remote call) in the
/// [`Cache`](https://docs.rs/cache-runtime) installed by `cache_runtime::install`.
///
/// ```ignore
/// use cache_runtime::cached_query;
///
/// #[cached_query(key = "user:{id}", version = 2, ttl = 60, skip(db))]
/// async fn get_user(db: &SqlitePool, id: i64) -> Result<User, sqlx::Error> {
///     sqlx::query_as("SELECT * FROM users WHERE id = ?").bind(id).fetch_one(db).await
/// }
/// ```
///
/// The first call with a given `id` runs the body and stores its value; later calls with the
/// same `id` return the stored value until it expires. For a `Result`, only `Ok` values are
/// stored; an `Err` is returned and the next call runs the body again. Any other type is stored
/// as is (an `Option`'s `None` too). The value must implement `Serialize` and
/// `DeserializeOwned`; the key's arguments must implement `Serialize`. A cache that fails (Redis
/// down, timeout, undecodable value) never fails the call: the body runs and its result is
/// returned.
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
/// - `tags = ["users", "user:{id}"]`: tags to invalidate entries by; placeholders name
///   parameters.
/// - `skip(db, client)`: parameters that are not part of the key (connections, clients,
///   handles). A destructured parameter (`State(db): State<Pool>`) is skipped by naming one of
///   the names it binds.
/// - `cache = crate::caches::sessions`: a `fn() -> cache_runtime::Cache` to use instead of the
///   installed cache.
/// - `codec = postcard`: how values are encoded: `msgpack` (the default, MessagePack with field
///   names), `postcard`, `bincode`, `json` (each behind the cache-runtime feature of the same
///   name), or the path of a type implementing `cache_runtime::codec::Codec`.
///
/// Not supported yet: sync functions, generic functions (lifetimes are fine), functions that
/// return `()`. `self` is never part of the key: in a method, add what distinguishes `self` to
/// the key explicitly.
///
/// # Equivalent code without the macro
///
/// The example above expands to:
///
/// ```ignore
/// async fn get_user(db: &SqlitePool, id: i64) -> Result<User, sqlx::Error> {
///     static __CACHE_SPEC: ::cache_runtime::__private::QuerySpec = ::cache_runtime::__private::QuerySpec {
///         function: ::core::concat!(::core::module_path!(), "::", "get_user"),
///         template: ::core::option::Option::Some(&["user:", ""]),
///         version: 2,
///         ttl: ::core::option::Option::Some(60),
///         tags: &[],
///         cache: ::core::option::Option::None,
///     };
///     let __cache_key = ::cache_runtime::__private::Key::new(&__CACHE_SPEC, &(&id,));
///     // Spanned at `User`: if it cannot be cached, the error points there.
///     ::cache_runtime::__private::cached_result::<_, _, ::cache_runtime::codec::CacheDefault, _>(
///         &__CACHE_SPEC,
///         __cache_key,
///         // The body, unchanged: `return` and `?` stay inside it.
///         async move {
///             sqlx::query_as("SELECT * FROM users WHERE id = ?").bind(id).fetch_one(db).await
///         },
///     )
///     .await
/// }
/// ```
///
/// A function whose return type's last path segment is not `Result` calls
/// `cached_value::<_, Codec, _>` instead, and caches its whole return value.
#[proc_macro_attribute]
pub fn cached_query(args: TokenStream, item: TokenStream) -> TokenStream {
    query::cached_query(args.into(), item.into()).into()
}

/// Caches whole HTTP responses of an axum handler, with Django `cache_page` semantics.
///
/// ```ignore
/// #[cached_view(ttl = 900, vary = ["Accept-Language"])]
/// async fn users_page(State(db): State<SqlitePool>) -> Html<String> { /* render */ }
/// ```
///
/// Arguments: `ttl = SECS` (default: the cache's), `version = N` (default 1),
/// `vary = ["Header", ...]` (request headers that are part of the key),
/// `statuses = [200, ...]` (statuses that are stored; default `[200]`),
/// `cache = path::to::fn` (a `fn() -> Cache`). The key is the method (HEAD shares GET's
/// entry), scheme, host, path and query, and the `vary` headers. The storage rules
/// (no `Set-Cookie`, no `private`/`no-store`, `Authorization` bypass, ...) are documented in
/// `cache_runtime::view`.
///
/// # Equivalent code without the macro
///
/// ```ignore
/// async fn users_page(
///     __cache_req: ::cache_runtime::__private::ViewRequest,
///     State(db): State<SqlitePool>,
/// ) -> ::cache_runtime::__private::ViewResponse {
///     static __CACHE_VIEW: ::cache_runtime::__private::ViewSpec = ::cache_runtime::__private::ViewSpec {
///         function: ::core::concat!(::core::module_path!(), "::", "users_page"),
///         version: 1,
///         ttl: ::core::option::Option::Some(900),
///         vary: &["Accept-Language"],
///         statuses: &[],
///         cache: ::core::option::Option::None,
///     };
///     ::cache_runtime::__private::cached_view(&__CACHE_VIEW, __cache_req, async move { /* render */ }).await
/// }
/// ```
#[proc_macro_attribute]
pub fn cached_view(args: TokenStream, item: TokenStream) -> TokenStream {
    view::cached_view(args.into(), item.into()).into()
}
