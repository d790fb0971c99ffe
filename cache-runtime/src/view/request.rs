//! What the view core needs from a request, and the key it is cached under.

use std::fmt::Write as _;

use http::{Extensions, HeaderMap, Method, Uri, header};

use super::{forwarded, url};
use crate::key;

/// The parts of a request the view cache reads: method, URI, headers.
///
/// The axum adapter extracts it (`FromRequestParts`) as the first argument the
/// `#[cached_view]` expansion adds to a handler; the URI is the one the client sent, also
/// inside nested routers (axum's `OriginalUri`).
///
/// ```
/// use cache_runtime::__private::ViewRequest;
///
/// let request = ViewRequest::new(
///     http::Method::GET,
///     "/users?page=2".parse().unwrap(),
///     http::HeaderMap::new(),
/// );
/// assert_eq!(request.uri().query(), Some("page=2"));
/// ```
#[derive(Debug, Clone)]
pub struct ViewRequest {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
}

impl ViewRequest {
    /// A request with this method, URI (origin-form `/path?query` or absolute) and headers.
    pub fn new(method: Method, uri: Uri, headers: HeaderMap) -> ViewRequest {
        ViewRequest {
            method,
            uri,
            headers,
        }
    }

    /// Copies what the cache needs out of a request's head, preferring axum's
    /// `OriginalUri` (set by routers, kept through `nest`) over the possibly stripped URI.
    pub(crate) fn from_head(
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        extensions: &Extensions,
    ) -> ViewRequest {
        #[cfg(feature = "axum")]
        let uri = extensions
            .get::<axum::extract::OriginalUri>()
            .map_or(uri, |original| &original.0);
        #[cfg(not(feature = "axum"))]
        let _ = extensions;
        ViewRequest::new(method.clone(), uri.clone(), headers.clone())
    }

    /// The request method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The request URI.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// The request headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }
}

/// The request's part of a response's key ([`key::view`] adds the version and the view):
///
/// `GET:{scheme}://{host}{path}[?{query}]` then `|{header}={values}` for each `vary`
/// header in order, where `query` is the canonical form of the query
/// ([`url::canonical_query`]: every spelling an app cannot tell apart is one key).
///
/// It is injective (different requests never share a key unless they differ only in
/// headers outside `vary`):
/// - the scheme is a URI scheme (no `:`), the host has `%`, `/`, `|`, spaces, controls and
///   non-ASCII bytes percent-escaped, so the path starts at the first `/`;
/// - the path has `%`, `|`, spaces, controls and non-ASCII bytes escaped, and the
///   canonical query holds only unreserved characters, `%`, `=` and `&`, so the first `|`
///   starts the vary part;
/// - names come from the (fixed) `vary` list, and each value is written by
///   [`key::encode_value`], which escapes `=` and `,`: a value cannot contain `|{name}=`.
///   Repeated header lines are joined with `,`; an absent header is `~`, an empty one `''`;
///   a value that is not UTF-8 is `#` and its bytes in hex (`#` is escaped in strings).
///
/// With `trust_forwarded`, the forwarded headers follow (see [`forwarded`]): each of
/// [`forwarded::URL_HEADERS`] as a `vary` header would be, then `|forwarded=` with the
/// `host` and `proto` parameters of each `Forwarded` line (`;`-joined, lines `,`-joined; a
/// line that does not parse is `#` and its bytes in hex).
///
/// `None` when the URI has no absolute path (`*`, authority-form): not cacheable.
pub(crate) fn request_key<V: AsRef<str>>(
    request: &ViewRequest,
    vary: &[V],
    trust_forwarded: bool,
) -> Option<String> {
    let uri = &request.uri;
    let path = uri.path();
    if !path.starts_with('/') {
        return None;
    }
    let host = match request.headers.get(header::HOST) {
        Some(host) => host.as_bytes(),
        None => uri.authority().map_or(&b""[..], |a| a.as_str().as_bytes()),
    };
    let mut out = String::with_capacity(64 + host.len() + path.len());
    out.push_str("GET:");
    out.push_str(uri.scheme_str().unwrap_or("http"));
    out.push_str("://");
    escape(&mut out, host, true);
    escape(&mut out, path.as_bytes(), false);
    // Only unreserved characters, `%`, `=` and `&`: no `|`, nothing to escape.
    let query = url::canonical_query(uri.query().unwrap_or(""));
    if !query.is_empty() {
        out.push('?');
        out.push_str(&query);
    }
    for name in vary {
        let name = name.as_ref();
        let values = request.headers.get_all(name).iter();
        push_header(&mut out, name, values.map(|v| Value::Text(v.as_bytes())));
    }
    if trust_forwarded {
        for name in &forwarded::URL_HEADERS {
            let values = request.headers.get_all(name).iter();
            push_header(
                &mut out,
                name.as_str(),
                values.map(|v| Value::Text(v.as_bytes())),
            );
        }
        let lines = request.headers.get_all(header::FORWARDED).iter();
        let params = lines.map(|line| match forwarded::url_params(line.as_bytes()) {
            Some(params) => Value::Owned(params.join(";")),
            None => Value::Raw(line.as_bytes()),
        });
        push_header(&mut out, "forwarded", params);
    }
    Some(out)
}

/// One header line's contribution to a key.
enum Value<'a> {
    /// Written as text when it is UTF-8, else as `Raw`.
    Text(&'a [u8]),
    /// Text derived from a line.
    Owned(String),
    /// `#` and the bytes in hex.
    Raw(&'a [u8]),
}

/// Writes `|{name}={values}`: `~` when there are none, else each value (text through
/// [`key::encode_value`], which escapes `#`, `=` and `,`; bytes as `#` and hex) joined
/// with `,`.
fn push_header<'a>(out: &mut String, name: &str, values: impl Iterator<Item = Value<'a>>) {
    out.push('|');
    out.push_str(&name.to_ascii_lowercase());
    out.push('=');
    let mut values = values.peekable();
    if values.peek().is_none() {
        out.push('~');
    }
    for (i, value) in values.enumerate() {
        if i > 0 {
            out.push(',');
        }
        let bytes = match value {
            Value::Owned(text) => {
                let _ = key::encode_value(&text, out);
                continue;
            }
            Value::Text(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) => {
                    let _ = key::encode_value(text, out);
                    continue;
                }
                Err(_) => bytes,
            },
            Value::Raw(bytes) => bytes,
        };
        out.push('#');
        for b in bytes {
            let _ = write!(out, "{b:02x}");
        }
    }
}

/// Percent-escapes `%`, `|`, bytes outside printable ASCII and, in a host, `/`.
fn escape(out: &mut String, bytes: &[u8], host: bool) {
    for &b in bytes {
        if b.is_ascii_graphic() && b != b'%' && b != b'|' && !(host && b == b'/') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// Whether `vary` names `header` (case-insensitive).
pub(crate) fn varies_on<V: AsRef<str>>(vary: &[V], header: &str) -> bool {
    vary.iter()
        .any(|v| v.as_ref().trim().eq_ignore_ascii_case(header))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn request(uri: &str, headers: &[(&str, &[u8])]) -> ViewRequest {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_bytes(value).unwrap(),
            );
        }
        ViewRequest::new(Method::GET, uri.parse().unwrap(), map)
    }

    fn key(uri: &str, headers: &[(&str, &[u8])], vary: &[&str]) -> String {
        key::view(
            1,
            "app::page",
            &request_key(&request(uri, headers), vary, false).unwrap(),
        )
    }

    #[test]
    fn readable_shape() {
        assert_eq!(
            key("/users?page=2", &[("host", b"example.com:3000")], &[]),
            "1:view:app::page:GET:http://example.com:3000/users?page=2"
        );
        assert_eq!(
            key("https://h/x", &[], &[]),
            "1:view:app::page:GET:https://h/x"
        );
        assert_eq!(
            key(
                "/",
                &[("host", b"h"), ("accept-language", b"fr")],
                &["Accept-Language", "X-Absent"]
            ),
            "1:view:app::page:GET:http://h/|accept-language=fr|x-absent=~"
        );
    }

    #[test]
    fn host_header_wins_over_the_uri_authority() {
        assert_eq!(
            key("http://a/x", &[("host", b"b")], &[]),
            "1:view:app::page:GET:http://b/x"
        );
    }

    #[test]
    fn separators_in_user_data_are_escaped() {
        // A host holding a path, a path holding a vary segment: all escaped.
        assert_ne!(
            key("/b", &[("host", b"a")], &[]),
            key("/", &[("host", b"a/b")], &[])
        );
        assert_eq!(
            key("/", &[("host", b"a/b")], &[]),
            "1:view:app::page:GET:http://a%2Fb/"
        );
        let tricky = key("/x%7Cy", &[("host", b"h")], &[]);
        assert_eq!(tricky, "1:view:app::page:GET:http://h/x%257Cy");
        // Values with `,` and `=` cannot imitate two values or another header.
        assert_ne!(
            key("/", &[("x-a", b"1"), ("x-a", b"2")], &["x-a"]),
            key("/", &[("x-a", b"1,2")], &["x-a"])
        );
        assert_ne!(
            key("/", &[("x-a", b"1|x-b=2")], &["x-a", "x-b"]),
            key("/", &[("x-a", b"1"), ("x-b", b"2")], &["x-a", "x-b"])
        );
        assert_ne!(key("/", &[("x-a", b"")], &["x-a"]), key("/", &[], &["x-a"]));
        assert_ne!(
            key("/", &[("x-a", b"~")], &["x-a"]),
            key("/", &[], &["x-a"])
        );
    }

    fn trusted(headers: &[(&str, &[u8])]) -> String {
        request_key::<&str>(&request("/", headers), &[], true).unwrap()
    }

    #[test]
    fn trusted_forwarded_headers_are_keyed() {
        let plain = trusted(&[("host", b"h")]);
        assert_eq!(
            plain,
            "GET:http://h/|x-forwarded-host=~|x-forwarded-proto=~|x-forwarded-port=~\
             |x-forwarded-prefix=~|forwarded=~"
        );
        let evil = trusted(&[("host", b"h"), ("x-forwarded-host", b"evil.test")]);
        assert!(evil.contains("|x-forwarded-host=evil.test|"), "{evil}");
        let fwd = trusted(&[("forwarded", b"for=1.2.3.4;host=a.test;proto=https")]);
        assert!(
            fwd.ends_with("|forwarded=host%3Da.test;proto%3Dhttps"),
            "{fwd}"
        );
        // The client's address is not keyed: every client shares the entry.
        assert_eq!(
            fwd,
            trusted(&[("forwarded", b"for=5.6.7.8;host=a.test;proto=https")])
        );
        assert_ne!(fwd, trusted(&[("forwarded", b"host=a.test")]));
        // A line that does not parse is keyed by its bytes, apart from any parsed one.
        let raw = trusted(&[("forwarded", b"host=a\"")]);
        assert!(raw.ends_with("|forwarded=#686f73743d6122"), "{raw}");
        assert_ne!(raw, trusted(&[("forwarded", br#"host="a\"""#)]));
    }

    #[test]
    fn non_utf8_values_are_hex() {
        let k = key("/", &[("x-a", &[0xe9])], &["x-a"]);
        assert!(k.ends_with("|x-a=#e9"), "{k}");
        assert_ne!(k, key("/", &[("x-a", "é".as_bytes())], &["x-a"]));
    }

    #[test]
    fn long_urls_are_bounded() {
        let long = format!("/{}", "a".repeat(1000));
        let k = key(&long, &[], &[]);
        assert!(k.len() <= key::MAX_KEY_LEN);
        assert_ne!(k, key(&format!("{long}b"), &[], &[]));
    }

    #[test]
    fn asterisk_form_is_not_cacheable() {
        let req = ViewRequest::new(Method::GET, "*".parse().unwrap(), HeaderMap::new());
        assert_eq!(request_key::<&str>(&req, &[], false), None);
    }
}
