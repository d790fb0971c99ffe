//! Forwarded headers: the request headers a proxy sets to tell the app the URL the client
//! used (`Forwarded` with `host=`/`proto=`, `X-Forwarded-Host`, `-Proto`, `-Port`,
//! `-Prefix`). An app behind a proxy builds its links from them (axum-extra's `Host`
//! prefers them to `Host`), so a response depends on them; but any client can send them,
//! so they can only be believed when a proxy the operator controls sets or strips them.
//!
//! - **Not trusted** (the default, [`CacheBuilder::trust_forwarded`](crate::CacheBuilder::trust_forwarded)
//!   left off): a request carrying any of them bypasses the cache (neither read nor
//!   written), so a forged `X-Forwarded-Host: evil.test` reaches no one else.
//! - **Trusted**: they are part of the key, like `vary` headers: each spelling of the URL
//!   has its own entry. Of `Forwarded`, only `host` and `proto` are keyed (`for` and `by`
//!   name the client and the proxy, which would give every client its own entry).
//!
//! `X-Forwarded-For` and `X-Real-Ip` name the client, not the URL: they neither bypass nor
//! key; a page that shows them must name them in `vary`.

use http::{HeaderMap, HeaderName};

/// The `X-Forwarded-*` headers that shape the URL an app sees, in key order (as
/// `HeaderName`s: every request is checked for them, and a name given as text is parsed on
/// each lookup).
pub(crate) const URL_HEADERS: [HeaderName; 4] = [
    HeaderName::from_static("x-forwarded-host"),
    HeaderName::from_static("x-forwarded-proto"),
    HeaderName::from_static("x-forwarded-port"),
    HeaderName::from_static("x-forwarded-prefix"),
];

/// Whether the request carries anything a proxy would use to tell the app its URL: an
/// `X-Forwarded-*` header of [`URL_HEADERS`], or a `Forwarded` header with a `host` or
/// `proto` parameter (or one that does not parse: it may hide one).
pub(crate) fn shapes_url(headers: &HeaderMap) -> bool {
    URL_HEADERS.iter().any(|name| headers.contains_key(name))
        || headers
            .get_all(http::header::FORWARDED)
            .iter()
            .any(|value| url_params(value.as_bytes()).is_none_or(|params| !params.is_empty()))
}

/// The `host` and `proto` parameters of one `Forwarded` header line (RFC 7239 §4), in
/// order, as `name=value` with the quotes of a quoted value removed; `None` when the line
/// does not parse.
pub(crate) fn url_params(value: &[u8]) -> Option<Vec<String>> {
    let text = std::str::from_utf8(value).ok()?;
    let mut params = Vec::new();
    for pair in split_outside_quotes(text)? {
        let pair = pair.trim();
        if pair.is_empty() {
            continue;
        }
        let (name, value) = pair.split_once('=')?;
        let name = name.trim().to_ascii_lowercase();
        if name == "host" || name == "proto" {
            params.push(format!("{name}={}", unquote(value.trim())?));
        }
    }
    Some(params)
}

/// Splits at `,` and `;` outside quoted strings; `None` for an unterminated quote.
fn split_outside_quotes(text: &str) -> Option<Vec<&str>> {
    let mut pieces = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' | ';' if !quoted => {
                pieces.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if quoted {
        return None;
    }
    pieces.push(&text[start..]);
    Some(pieces)
}

/// A token as it is, a quoted string without its quotes and escapes.
fn unquote(value: &str) -> Option<String> {
    let Some(inner) = value.strip_prefix('"') else {
        return Some(value.to_owned());
    };
    let inner = inner.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        out.push(if c == '\\' { chars.next()? } else { c });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    #[test]
    fn url_shaping_headers_are_recognised() {
        assert!(!shapes_url(&headers(&[])));
        assert!(!shapes_url(&headers(&[("x-forwarded-for", "1.2.3.4")])));
        assert!(!shapes_url(&headers(&[(
            "forwarded",
            "for=1.2.3.4;by=proxy"
        )])));
        assert!(!shapes_url(&headers(&[(
            "Forwarded",
            "for=\"[2001:db8::1]:4711\""
        )])));
        assert!(shapes_url(&headers(&[("x-forwarded-host", "evil.test")])));
        assert!(shapes_url(&headers(&[("X-Forwarded-Proto", "https")])));
        assert!(shapes_url(&headers(&[("x-forwarded-port", "443")])));
        assert!(shapes_url(&headers(&[("x-forwarded-prefix", "/app")])));
        assert!(shapes_url(&headers(&[(
            "forwarded",
            "for=1.2.3.4;Host=evil.test"
        )])));
        assert!(shapes_url(&headers(&[("forwarded", "for=a, proto=https")])));
        assert!(shapes_url(&headers(&[("forwarded", "for=\"unterminated")])));
        assert!(shapes_url(&headers(&[("forwarded", "garbage")])));
    }

    #[test]
    fn forwarded_parameters_parse_per_rfc_7239() {
        assert_eq!(
            url_params(b"for=192.0.2.60;proto=http;by=203.0.113.43").unwrap(),
            ["proto=http"]
        );
        assert_eq!(
            url_params(b"host=\"a.test:8080\";for=x, HOST=b.test").unwrap(),
            ["host=a.test:8080", "host=b.test"]
        );
        assert_eq!(
            url_params(b"for=\"x;host=evil\";proto=https").unwrap(),
            ["proto=https"],
            "separators inside quotes are data"
        );
        assert_eq!(url_params(b"host=\"a\\\"b\"").unwrap(), ["host=a\"b"]);
        assert_eq!(url_params(b"for=\"x").as_deref(), None);
        assert_eq!(url_params(b"host").as_deref(), None);
    }
}
