//! Canonical URL spellings: one key for every spelling of a query an app cannot tell
//! apart, and one path counter for every query string of a path.
//!
//! **Query in the key.** Apps read queries as `application/x-www-form-urlencoded` pairs
//! (axum's `Query`, serde_urlencoded): `?b=2&a=1`, `?a=1&b=2`, `?a=%31&b=2&` and
//! `?a=1&&b=2` mean the same, and so do `q=a+b` and `q=a%20b`. The key holds the pairs
//! decoded to bytes, sorted by name (stably: repeated names keep their order, `?t=x&t=y`
//! and `?t=y&t=x` stay apart, since an app reading a list sees them differ) and
//! re-encoded one way. Every parameter stays in the key, tracking ones (`utm_*`, `fbclid`)
//! included: a parameter left out of the key that the app reflects into the page would
//! let one request store its value for everyone (an unkeyed input). Strip them before the
//! cache, where the app cannot read them either (see `docs/SECURITY.md`).
//!
//! **Path in the key** stays as sent: a router tells `/%61bout` from `/about` (a static
//! route matches the raw path), so they may be different pages.
//!
//! **Path counter** (`p:{view}:{path}`, what [`invalidate_path`](super::invalidate_path)
//! bumps): the path without its query, unreserved characters decoded (`%61` is `a`, RFC
//! 3986 §6.2.2.2) and other escapes upper-cased. Invalidating `/users` (or
//! `/users?page=2`) covers every query string and every spelling of it; sharing a counter
//! only ever costs misses.

use std::borrow::Cow;
use std::fmt::Write as _;

/// The canonical form of a query string (see the module docs); empty when it has no pairs.
pub(crate) fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (form_decode(name), form_decode(value))
        })
        .collect();
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = String::with_capacity(query.len());
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        encode(&mut out, name);
        out.push('=');
        encode(&mut out, value);
    }
    out
}

/// The path a path counter is named by: no query, unreserved characters decoded, other
/// escapes upper-cased.
pub(crate) fn counter_path(path_and_query: &str) -> Cow<'_, str> {
    let path = path_and_query.split(['?', '#']).next().unwrap_or("");
    if !path.contains('%') {
        return Cow::Borrowed(path);
    }
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], hex_at(bytes, i + 1)) {
            (b'%', Some(b)) => {
                if is_unreserved(b) {
                    out.push(b as char);
                } else {
                    let _ = write!(out, "%{b:02X}");
                }
                i += 3;
            }
            (b, _) => {
                out.push(b as char);
                i += 1;
            }
        }
    }
    Cow::Owned(out)
}

/// `application/x-www-form-urlencoded` decoding to bytes: `+` is a space, `%XX` a byte, a
/// `%` not followed by two hex digits itself.
fn form_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], hex_at(bytes, i + 1)) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// The byte two hex digits at `at` spell, if they do.
fn hex_at(bytes: &[u8], at: usize) -> Option<u8> {
    let digits = bytes.get(at..at + 2)?;
    let text = std::str::from_utf8(digits).ok()?;
    u8::from_str_radix(text, 16).ok()
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Percent-encodes every byte but the unreserved ones: one spelling per byte string.
fn encode(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        if is_unreserved(b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_query_share_a_form() {
        let one = canonical_query("a=1&b=2");
        assert_eq!(one, "a=1&b=2");
        for spelling in ["b=2&a=1", "a=%31&b=2", "a=1&&b=2&", "%61=1&b=2"] {
            assert_eq!(canonical_query(spelling), one, "{spelling}");
        }
        assert_eq!(canonical_query("q=a+b"), canonical_query("q=a%20b"));
        assert_eq!(canonical_query("flag"), canonical_query("flag="));
        assert_eq!(canonical_query(""), "");
        assert_eq!(canonical_query("&&"), "");
    }

    #[test]
    fn different_queries_stay_apart() {
        assert_ne!(canonical_query("t=x&t=y"), canonical_query("t=y&t=x"));
        assert_ne!(canonical_query("a=1&b=2"), canonical_query("a=1%26b%3D2"));
        assert_ne!(canonical_query("q=a%2Bb"), canonical_query("q=a+b"));
        assert_ne!(canonical_query("a=%FF"), canonical_query("a=%FE"));
        assert_ne!(
            canonical_query("utm_source=x&a=1"),
            canonical_query("a=1"),
            "tracking parameters are keyed"
        );
        // A stray `%` is itself, as form decoding reads it.
        assert_eq!(canonical_query("a=%zz"), "a=%25zz");
        assert_eq!(canonical_query("a=%2"), canonical_query("a=%252"));
    }

    #[test]
    fn counter_paths_drop_the_query_and_decode_unreserved() {
        assert_eq!(counter_path("/users?page=2"), "/users");
        assert_eq!(counter_path("/users"), "/users");
        assert_eq!(counter_path("/%75sers/%61lice"), "/users/alice");
        assert_eq!(counter_path("/a%2fb"), "/a%2Fb");
        assert_eq!(counter_path("/a%2Fb"), "/a%2Fb");
        assert_eq!(counter_path("/50%"), "/50%");
        assert_eq!(counter_path("/x#frag"), "/x");
    }
}
