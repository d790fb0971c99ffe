//! What may be stored, what is stored, and the headers a cached response gets.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode};
use http_body::Body;
use sha2::{Digest, Sha256};

use super::body::ViewBody;
use super::freshness;
use super::request::varies_on;
use crate::envelope::{Kind, Opened};

/// The envelope's codec id of a stored response: its own layout (see [`write_payload`]).
pub(crate) const RESPONSE_CODEC: u8 = 0;

/// Why a response is not stored, or `Ok` with the lifetime its own headers give it in a
/// shared cache (`None`: the view's `ttl`), see [`freshness`].
pub(crate) fn storable<V: AsRef<str>>(
    status: StatusCode,
    headers: &HeaderMap,
    statuses: &[u16],
    vary: &[V],
) -> Result<Option<Duration>, &'static str> {
    let allowed = if statuses.is_empty() {
        status == StatusCode::OK
    } else {
        statuses.contains(&status.as_u16())
    };
    if !allowed {
        return Err("status not in `statuses`");
    }
    if headers.contains_key(header::SET_COOKIE) {
        return Err("Set-Cookie");
    }
    let lifetime = freshness::shared_lifetime(headers, SystemTime::now())?;
    for value in headers.get_all(header::VARY) {
        let Ok(value) = value.to_str() else {
            return Err("unreadable Vary");
        };
        for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name == "*" {
                return Err("Vary: *");
            }
            if !varies_on(vary, name) {
                return Err("Vary names a header the cache key lacks");
            }
        }
    }
    Ok(lifetime)
}

/// Adds what every stored response carries: a strong `ETag` (SHA-256 of the body, unless
/// the handler set one) and `Vary` naming the keyed headers (so downstream caches key on
/// them too).
pub(crate) fn prepare<V: AsRef<str>>(headers: &mut HeaderMap, body: &[u8], vary: &[V]) {
    if !headers.contains_key(header::ETAG) {
        let mut etag = String::with_capacity(66);
        etag.push('"');
        for b in Sha256::digest(body) {
            let _ = write!(etag, "{b:02x}");
        }
        etag.push('"');
        headers.insert(
            header::ETAG,
            HeaderValue::from_str(&etag).expect("hex is a valid header value"),
        );
    }
    let listed: Vec<String> = headers
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|n| n.trim().to_owned()))
        .collect();
    let missing: Vec<&str> = vary
        .iter()
        .map(|v| v.as_ref().trim())
        .filter(|v| !listed.iter().any(|l| l.eq_ignore_ascii_case(v)))
        .collect();
    if !missing.is_empty()
        && let Ok(value) = HeaderValue::from_str(&missing.join(", "))
    {
        headers.append(header::VARY, value);
    }
}

/// Headers never stored: hop-by-hop ones (and those the `Connection` header names), `Age`
/// (recomputed on every hit) and `Content-Length` (set from the stored body).
fn stored_header(name: &HeaderName, connection: &[String]) -> bool {
    let n = name.as_str();
    !(matches!(
        n,
        "connection"
            | "keep-alive"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "age"
            | "content-length"
    ) || n.starts_with("proxy-")
        || connection.iter().any(|c| c.eq_ignore_ascii_case(n)))
}

/// Writes the stored form of a response, the payload of its envelope:
///
/// ```text
/// u16 status, u16 header count N,
/// N × (u16 name length, name, u32 value length, value),
/// the body (the rest: a hit serves it as a slice of the stored bytes, without a copy)
/// ```
pub(crate) fn write_payload(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    out: &mut Vec<u8>,
) {
    let connection: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|n| n.trim().to_owned()))
        .collect();
    let kept: Vec<(&HeaderName, &HeaderValue)> = headers
        .iter()
        .filter(|(name, _)| stored_header(name, &connection))
        .take(u16::MAX as usize)
        .collect();
    out.reserve(4 + kept.len() * 32 + body.len());
    out.extend_from_slice(&status.as_u16().to_le_bytes());
    out.extend_from_slice(&(kept.len() as u16).to_le_bytes());
    for (name, value) in kept {
        // Header names are short (a HeaderName holds at most 64 KiB), values too.
        out.extend_from_slice(&(name.as_str().len() as u16).to_le_bytes());
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        out.extend_from_slice(value.as_bytes());
    }
    out.extend_from_slice(body);
}

/// Reads a payload front to back; every piece is a slice of it.
struct Cursor<'a> {
    bytes: &'a Bytes,
    at: usize,
}

impl<'a> Cursor<'a> {
    /// The next `n` bytes, borrowed.
    fn read(&mut self, n: usize) -> Option<&'a [u8]> {
        let bytes: &'a Bytes = self.bytes;
        let piece = bytes.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(piece)
    }

    /// The next `n` bytes, as a slice sharing the stored buffer.
    fn take(&mut self, n: usize) -> Option<Bytes> {
        let start = self.at;
        self.read(n)?;
        Some(self.bytes.slice(start..self.at))
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.read(2)?.try_into().ok()?))
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.read(4)?.try_into().ok()?))
    }
}

/// A response as stored.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    pub(crate) filled_at: SystemTime,
    pub(crate) ttl: Duration,
}

impl Entry {
    /// The stored response in `value`, or `None` for anything else (another kind, corrupt
    /// bytes, a header that no longer parses): a miss. Header values and the body are
    /// slices of the stored bytes.
    pub(crate) fn open(value: &Opened) -> Option<Entry> {
        if value.header.kind != Kind::Response || value.header.codec != RESPONSE_CODEC {
            return None;
        }
        let mut payload = Cursor {
            bytes: &value.payload,
            at: 0,
        };
        let status = StatusCode::from_u16(payload.u16()?).ok()?;
        let count = payload.u16()? as usize;
        // Each header takes at least 7 bytes: a count the payload cannot hold allocates
        // nothing, and a map never grows past what `http` allows (`try_append`). Room for
        // what a hit adds (`Age`, `Content-Length`; freshness for older entries).
        let mut headers = HeaderMap::with_capacity(count.min(value.payload.len() / 7).min(256) + 4);
        for _ in 0..count {
            let name_len = payload.u16()? as usize;
            let name = HeaderName::from_bytes(payload.read(name_len)?).ok()?;
            let value_len = payload.u32()? as usize;
            let value = HeaderValue::from_maybe_shared(payload.take(value_len)?).ok()?;
            headers.try_append(name, value).ok()?;
        }
        Some(Entry {
            status,
            headers,
            body: payload.bytes.slice(payload.at..),
            filled_at: value.header.filled_at(),
            ttl: value.header.ttl(),
        })
    }

    /// Adds what every hit of this entry carries and that does not change from hit to
    /// hit: `Content-Length`, and `Cache-Control: max-age` and `Expires` for an entry
    /// stored without them (older entries; see [`add_freshness`]). Done once per decoded
    /// entry, not on every hit.
    pub(crate) fn complete(mut self) -> Entry {
        add_freshness(&mut self.headers, self.filled_at, self.ttl);
        self.headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(self.body.len()));
        self
    }

    /// The response a hit serves from a [`complete`](Self::complete)d entry: its headers
    /// with `Age`, `304` for a matching `If-None-Match`, no body for HEAD.
    pub(crate) fn respond<B: Body>(
        self,
        request_headers: &HeaderMap,
        head: bool,
        now: SystemTime,
    ) -> Response<ViewBody<B>> {
        let mut headers = self.headers;
        let age = now
            .duration_since(self.filled_at)
            .unwrap_or(Duration::ZERO)
            .as_secs();
        headers.insert(header::AGE, HeaderValue::from(age));
        if self.status.is_success()
            && matches_none_match(request_headers, headers.get(header::ETAG))
        {
            return not_modified(&headers);
        }
        let body = if head {
            ViewBody::empty()
        } else {
            ViewBody::full(self.body)
        };
        let mut response = Response::new(body);
        *response.status_mut() = self.status;
        *response.headers_mut() = headers;
        response
    }
}

/// Django's `patch_response_headers`: when the response has neither `Expires` nor a
/// `max-age` directive, adds `Cache-Control: max-age=<ttl>` (after any directives already
/// there, e.g. `public, max-age=600`) and `Expires: <fill time + ttl>`.
///
/// `max-age` is the entry's whole lifetime, not what is left of it: hits also carry `Age`,
/// and every HTTP cache (browsers included) subtracts `Age` from `max-age` (RFC 9111
/// §4.2.3), so a downstream copy expires exactly when the stored entry does. Sending the
/// seconds left together with `Age` would count the age twice.
pub(crate) fn add_freshness(headers: &mut HeaderMap, filled_at: SystemTime, ttl: Duration) {
    let has_max_age = headers.get_all(header::CACHE_CONTROL).iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',').any(|d| {
                d.split('=')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .eq_ignore_ascii_case("max-age")
            })
        })
    });
    if has_max_age || headers.contains_key(header::EXPIRES) {
        return;
    }
    // Whatever the stored header says (foreign bytes, a huge setting), what is sent stays
    // within what HTTP expresses: max-age at most 2^31 (RFC 9111 §1.2.2), an HTTP date
    // within the year 9999 (`httpdate` panics past it).
    let ttl = ttl.min(Duration::from_secs(1 << 31));
    let expires = filled_at
        .checked_add(ttl)
        .filter(|at| *at <= last_http_date());
    let existing: Vec<&str> = headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    let mut value = existing.join(", ");
    if !value.is_empty() {
        value.push_str(", ");
    }
    let _ = write!(value, "max-age={}", ttl.as_secs());
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert(header::CACHE_CONTROL, value);
    }
    if let Some(expires) = expires
        && let Ok(value) = HeaderValue::from_str(&httpdate::fmt_http_date(expires))
    {
        headers.insert(header::EXPIRES, value);
    }
}

/// With a stale window, tells downstream caches what the cache itself does (RFC 5861):
/// appends `stale-while-revalidate=N, stale-if-error=N` to `Cache-Control` unless it names
/// either already.
pub(crate) fn add_stale(headers: &mut HeaderMap, stale: Duration) {
    let secs = stale.as_secs();
    if secs == 0 {
        return;
    }
    let existing: Vec<&str> = headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if existing.iter().any(|v| v.contains("stale-")) {
        return;
    }
    let mut value = existing.join(", ");
    if !value.is_empty() {
        value.push_str(", ");
    }
    let _ = write!(
        value,
        "stale-while-revalidate={secs}, stale-if-error={secs}"
    );
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert(header::CACHE_CONTROL, value);
    }
}

/// 9999-12-31T23:59:59Z, the last instant an HTTP date can name.
fn last_http_date() -> SystemTime {
    std::time::UNIX_EPOCH + Duration::from_secs(253_402_300_799)
}

/// Whether the request's `If-None-Match` matches `etag` by the weak comparison
/// (RFC 9110 §13.1.2): `*` matches any stored response; otherwise any tag in the lists
/// whose opaque part equals the ETag's, `W/` ignored on both sides.
pub(crate) fn matches_none_match(request: &HeaderMap, etag: Option<&HeaderValue>) -> bool {
    let target = etag.map(|e| {
        let e = e.as_bytes();
        e.strip_prefix(b"W/").unwrap_or(e)
    });
    request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .any(|list| list_matches(list.as_bytes(), target))
}

fn list_matches(mut rest: &[u8], target: Option<&[u8]>) -> bool {
    loop {
        while let [b' ' | b'\t' | b',', tail @ ..] = rest {
            rest = tail;
        }
        if rest.is_empty() {
            return false;
        }
        if rest[0] == b'*' {
            return true;
        }
        rest = rest.strip_prefix(b"W/").unwrap_or(rest);
        let tag_end = match rest {
            [b'"', tail @ ..] => tail.iter().position(|&b| b == b'"').map(|i| i + 2),
            _ => None,
        };
        match tag_end {
            Some(end) => {
                if target == Some(&rest[..end]) {
                    return true;
                }
                rest = &rest[end..];
            }
            // Not an entity tag: skip to the next element.
            None => match rest.iter().position(|&b| b == b',') {
                Some(i) => rest = &rest[i + 1..],
                None => return false,
            },
        }
    }
}

/// `304 Not Modified` with the headers a 200 would have carried that RFC 9110 §15.4.5
/// asks for, and no body.
pub(crate) fn not_modified<B: Body>(headers: &HeaderMap) -> Response<ViewBody<B>> {
    let mut response = Response::new(ViewBody::empty());
    *response.status_mut() = StatusCode::NOT_MODIFIED;
    let out = response.headers_mut();
    for name in [
        header::CACHE_CONTROL,
        header::CONTENT_LOCATION,
        header::DATE,
        header::ETAG,
        header::EXPIRES,
        header::VARY,
        header::AGE,
    ] {
        for value in headers.get_all(&name) {
            out.append(name.clone(), value.clone());
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{self, Compression, Header, Writer};
    use std::time::UNIX_EPOCH;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn ok(pairs: &[(&str, &str)], vary: &[&str]) -> Result<Option<Duration>, &'static str> {
        storable(StatusCode::OK, &headers(pairs), &[], vary)
    }

    #[test]
    fn storable_rules() {
        assert!(ok(&[("content-type", "text/html")], &[]).is_ok());
        assert!(ok(&[("set-cookie", "a=b")], &[]).is_err());
        assert!(ok(&[("cache-control", "public, max-age=60")], &[]).is_ok());
        assert!(ok(&[("cache-control", "Private")], &[]).is_err());
        assert!(ok(&[("cache-control", "max-age=0, no-store")], &[]).is_err());
        assert!(ok(&[("cache-control", "no-cache=\"set-cookie\"")], &[]).is_err());
        assert!(ok(&[("vary", "*")], &["accept"]).is_err());
        assert!(ok(&[("vary", "Accept-Language")], &[]).is_err());
        assert!(
            ok(
                &[("vary", "accept-language, Accept")],
                &["Accept-Language", "accept"]
            )
            .is_ok()
        );
        assert!(storable::<&str>(StatusCode::NOT_FOUND, &HeaderMap::new(), &[], &[]).is_err());
        assert!(
            storable::<&str>(StatusCode::NOT_FOUND, &HeaderMap::new(), &[200, 404], &[]).is_ok()
        );
        assert!(storable::<&str>(StatusCode::OK, &HeaderMap::new(), &[404], &[]).is_err());
    }

    #[test]
    fn none_match_lists_star_and_weak_tags() {
        let etag = HeaderValue::from_static("\"abc\"");
        let m = |inm: &str| matches_none_match(&headers(&[("if-none-match", inm)]), Some(&etag));
        assert!(m("\"abc\""));
        assert!(m("W/\"abc\""));
        assert!(m("\"x\", \"abc\""));
        assert!(m("\"x\",W/\"abc\""));
        assert!(m("*"));
        assert!(m("garbage, \"abc\""));
        assert!(!m("\"abcd\""));
        assert!(!m("\"ab"));
        assert!(!m("abc"));
        assert!(!m(""));
        let weak = HeaderValue::from_static("W/\"abc\"");
        assert!(matches_none_match(
            &headers(&[("if-none-match", "\"abc\"")]),
            Some(&weak)
        ));
        assert!(!matches_none_match(&HeaderMap::new(), Some(&etag)));
        assert!(matches_none_match(
            &headers(&[("if-none-match", "*")]),
            None
        ));
    }

    #[test]
    fn prepare_adds_a_strong_etag_and_vary() {
        let mut h = HeaderMap::new();
        prepare(&mut h, b"hello", &["Accept-Language"]);
        assert_eq!(
            h[header::ETAG],
            "\"2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824\""
        );
        assert_eq!(h[header::VARY], "Accept-Language");
        let mut h = headers(&[("etag", "W/\"mine\""), ("vary", "accept-language")]);
        prepare(&mut h, b"hello", &["Accept-Language"]);
        assert_eq!(h[header::ETAG], "W/\"mine\"");
        assert_eq!(h.get_all(header::VARY).iter().count(), 1);
    }

    #[test]
    fn freshness_is_added_only_when_the_handler_set_none() {
        let filled = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut h = HeaderMap::new();
        add_freshness(&mut h, filled, Duration::from_secs(60));
        assert_eq!(h[header::CACHE_CONTROL], "max-age=60");
        assert_eq!(
            httpdate::parse_http_date(h[header::EXPIRES].to_str().unwrap()).unwrap(),
            filled + Duration::from_secs(60)
        );
        let mut h = headers(&[("cache-control", "public")]);
        add_freshness(&mut h, filled, Duration::from_secs(60));
        assert_eq!(h[header::CACHE_CONTROL], "public, max-age=60");
        let mut h = headers(&[("cache-control", "max-age=5")]);
        add_freshness(&mut h, filled, Duration::from_secs(60));
        assert_eq!(h[header::CACHE_CONTROL], "max-age=5");
        assert!(!h.contains_key(header::EXPIRES));
        let mut h = headers(&[("expires", "Thu, 01 Jan 1970 00:00:00 GMT")]);
        add_freshness(&mut h, filled, Duration::from_secs(60));
        assert!(!h.contains_key(header::CACHE_CONTROL));
    }

    #[test]
    fn freshness_of_hostile_times_never_panics() {
        let far = UNIX_EPOCH + Duration::from_millis(u64::MAX);
        for (filled, ttl) in [
            (UNIX_EPOCH, Duration::MAX),
            (far, Duration::from_millis(u64::MAX)),
            (
                SystemTime::now(),
                Duration::from_secs(300 * 365 * 86_400 * 30),
            ),
            (last_http_date(), Duration::from_secs(1)),
        ] {
            let mut h = HeaderMap::new();
            add_freshness(&mut h, filled, ttl);
            let max_age: u64 = h[header::CACHE_CONTROL].to_str().unwrap()[8..]
                .parse()
                .unwrap();
            assert!(max_age <= 1 << 31);
            if let Some(expires) = h.get(header::EXPIRES) {
                httpdate::parse_http_date(expires.to_str().unwrap()).unwrap();
            }
        }
    }

    fn stored(status: StatusCode, h: &HeaderMap, body: &'static [u8], ttl: Duration) -> Opened {
        let header = Header::new(Kind::Response, RESPONSE_CODEC, ttl, Duration::ZERO);
        let mut writer = Writer::new(&header, std::iter::empty(), 0).unwrap();
        write_payload(status, h, body, writer.payload());
        let compression = Compression {
            above: None,
            limit: 1 << 20,
        };
        envelope::open(writer.seal(compression), 1 << 20).unwrap()
    }

    #[test]
    fn entries_round_trip_without_hop_by_hop_headers() {
        let h = headers(&[
            ("content-type", "text/plain"),
            ("x-multi", "1"),
            ("x-multi", "2"),
            ("connection", "x-private-hop"),
            ("x-private-hop", "a"),
            ("transfer-encoding", "chunked"),
            ("proxy-authenticate", "Basic"),
            ("age", "3"),
            ("content-length", "5"),
        ]);
        let value = stored(StatusCode::CREATED, &h, b"hello", Duration::from_secs(9));
        let entry = Entry::open(&value).unwrap();
        assert_eq!(entry.status, StatusCode::CREATED);
        assert_eq!(entry.body, Bytes::from_static(b"hello"));
        assert_eq!(entry.ttl, Duration::from_secs(9));
        assert_eq!(entry.filled_at, value.header.filled_at());
        let names: Vec<&str> = entry.headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["content-type", "x-multi"]);
        assert_eq!(entry.headers.get_all("x-multi").iter().count(), 2);
        // The body is a slice of the stored bytes, not a copy.
        let stored_range = value.payload.as_ptr_range();
        assert!(stored_range.contains(&entry.body.as_ptr()));
    }

    #[test]
    fn other_kinds_and_corrupt_payloads_are_misses() {
        let value = stored(
            StatusCode::OK,
            &headers(&[("x-a", "1")]),
            b"x",
            Duration::from_secs(1),
        );
        assert!(Entry::open(&value).is_some());
        let mut query_kind = value.clone();
        query_kind.header.kind = Kind::Value;
        assert!(Entry::open(&query_kind).is_none());
        for cut in 0..value.payload.len() - 1 {
            let mut truncated = value.clone();
            truncated.payload = value.payload.slice(..cut);
            assert!(Entry::open(&truncated).is_none(), "payload cut at {cut}");
        }
        let mut bad_status = value.clone();
        bad_status.payload = Bytes::from_static(&[0, 0, 0, 0]);
        assert!(Entry::open(&bad_status).is_none());
    }

    #[test]
    fn hits_answer_304_and_head_without_body() {
        let mut h = headers(&[("content-type", "text/plain")]);
        prepare::<&str>(&mut h, b"hello", &[]);
        let now = SystemTime::now();
        let entry = Entry {
            status: StatusCode::OK,
            headers: h.clone(),
            body: Bytes::from_static(b"hello"),
            filled_at: now - Duration::from_secs(2),
            ttl: Duration::from_secs(60),
        }
        .complete();
        let hit: Response<ViewBody<http_body_util::Empty<Bytes>>> =
            entry.clone().respond(&HeaderMap::new(), false, now);
        assert_eq!(hit.status(), StatusCode::OK);
        assert_eq!(hit.headers()[header::AGE], "2");
        assert_eq!(hit.headers()[header::CACHE_CONTROL], "max-age=60");
        assert_eq!(hit.headers()[header::CONTENT_LENGTH], "5");
        assert_eq!(hit.body().size_hint().exact(), Some(5));

        let head: Response<ViewBody<http_body_util::Empty<Bytes>>> =
            entry.clone().respond(&HeaderMap::new(), true, now);
        assert_eq!(head.headers()[header::CONTENT_LENGTH], "5");
        assert_eq!(head.body().size_hint().exact(), Some(0));

        let inm = headers(&[("if-none-match", h[header::ETAG].to_str().unwrap())]);
        let not_modified: Response<ViewBody<http_body_util::Empty<Bytes>>> =
            entry.respond(&inm, false, now);
        assert_eq!(not_modified.status(), StatusCode::NOT_MODIFIED);
        assert!(not_modified.headers().contains_key(header::ETAG));
        assert!(not_modified.headers().contains_key(header::EXPIRES));
        assert!(!not_modified.headers().contains_key(header::CONTENT_TYPE));
        assert_eq!(not_modified.body().size_hint().exact(), Some(0));
    }
}
