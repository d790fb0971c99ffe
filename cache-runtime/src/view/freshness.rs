//! What a response's own caching headers allow a shared cache (this one) to do, read as
//! RFC 9111 and the CDNs read them.
//!
//! | header | read |
//! |---|---|
//! | `Surrogate-Control` (Edge Architecture 1.0, Fastly, Akamai) | first for the lifetime: `max-age` |
//! | `CDN-Cache-Control` (RFC 9213) | next: `max-age` (`s-maxage` too) |
//! | `Cache-Control` (RFC 9111) | next: `s-maxage`, else `max-age` (a shared cache prefers `s-maxage`) |
//! | `Expires` (minus `Date`, or now) | last; an invalid date is in the past (RFC 9111 §5.3) |
//!
//! The first that gives a lifetime sets it, and the stored entry lives the shorter of that
//! and the view's `ttl`. A lifetime of zero (`max-age=0`, `s-maxage=0`, an `Expires` in the
//! past) is stale on arrival: not stored, since this cache does not revalidate. Any of the
//! three fields saying `no-store`, `no-cache` or `private` (the last two with or without a
//! field list) keeps the response out, whichever gives the lifetime: the most restrictive
//! directive wins (RFC 9111 §4.2.1). A directive whose value does not parse is stale
//! information: not stored. `must-revalidate` and `proxy-revalidate` in any of the three,
//! and `s-maxage` in the last two (which carries `proxy-revalidate`, RFC 9111 §5.2.2.10),
//! forbid serving the response once stale ([`forbids_stale`]): a view's stale window does not
//! apply to it, and it is not announced downstream (RFC 9111 §4.2.4).
//!
//! The fields are stored and served as the handler set them: a CDN in front reads them too.

use std::time::{Duration, SystemTime};

use http::header::{self, HeaderMap, HeaderName};

/// `Surrogate-Control`.
const SURROGATE_CONTROL: &str = "surrogate-control";
/// `CDN-Cache-Control` (RFC 9213).
const CDN_CACHE_CONTROL: &str = "cdn-cache-control";

/// The lifetime the response's headers give it in a shared cache (`None`: they give none,
/// the view's `ttl` applies), or why it must not be stored.
pub(crate) fn shared_lifetime(
    headers: &HeaderMap,
    now: SystemTime,
) -> Result<Option<Duration>, &'static str> {
    let surrogate = directives(headers, &HeaderName::from_static(SURROGATE_CONTROL))?;
    let cdn = directives(headers, &HeaderName::from_static(CDN_CACHE_CONTROL))?;
    let cache_control = directives(headers, &header::CACHE_CONTROL)?;
    for field in [&surrogate, &cdn, &cache_control] {
        if field
            .iter()
            .any(|(name, _)| matches!(name.as_str(), "no-store" | "no-cache" | "private"))
        {
            return Err("Cache-Control (or a CDN's field) says private, no-store or no-cache");
        }
    }
    let lifetime = match seconds(&surrogate, &["max-age"])? {
        Some(lifetime) => Some(lifetime),
        None => match seconds(&cdn, &["s-maxage", "max-age"])? {
            Some(lifetime) => Some(lifetime),
            None => match seconds(&cache_control, &["s-maxage", "max-age"])? {
                Some(lifetime) => Some(lifetime),
                None => expires(headers, now)?,
            },
        },
    };
    match lifetime {
        Some(lifetime) if lifetime.is_zero() => {
            Err("stale on arrival (max-age=0, s-maxage=0 or Expires in the past)")
        }
        lifetime => Ok(lifetime),
    }
}

/// Whether the response's headers forbid a shared cache to serve it once stale:
/// `must-revalidate` or `proxy-revalidate` in `Surrogate-Control`, `CDN-Cache-Control` or
/// `Cache-Control`, or `s-maxage` in either of the last two. Headers that do not parse forbid
/// it too.
pub(crate) fn forbids_stale(headers: &HeaderMap) -> bool {
    let fields = [
        (HeaderName::from_static(SURROGATE_CONTROL), false),
        (HeaderName::from_static(CDN_CACHE_CONTROL), true),
        (header::CACHE_CONTROL, true),
    ];
    fields.iter().any(|(field, shared_max_age)| {
        directives(headers, field).map_or(true, |directives| {
            directives.iter().any(|(name, _)| {
                matches!(name.as_str(), "must-revalidate" | "proxy-revalidate")
                    || (*shared_max_age && name == "s-maxage")
            })
        })
    })
}

/// The directives of every line of `name`, names lower-cased, values unquoted.
fn directives(
    headers: &HeaderMap,
    name: &HeaderName,
) -> Result<Vec<(String, Option<String>)>, &'static str> {
    let mut out = Vec::new();
    for value in headers.get_all(name) {
        let value = value.to_str().map_err(|_| "unreadable caching header")?;
        for directive in value.split(',') {
            let mut parts = directive.splitn(2, '=');
            let name = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            if name.is_empty() {
                continue;
            }
            let value = parts.next().map(|v| v.trim().trim_matches('"').to_owned());
            out.push((name, value));
        }
    }
    Ok(out)
}

/// The first of `names` present, in delta-seconds (capped at 2^31, RFC 9111 §1.2.2); an
/// error when its value does not parse.
fn seconds(
    directives: &[(String, Option<String>)],
    names: &[&str],
) -> Result<Option<Duration>, &'static str> {
    for wanted in names {
        if let Some((_, value)) = directives.iter().find(|(name, _)| name == wanted) {
            let digits = value.as_deref().unwrap_or("");
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err("a max-age or s-maxage that is not a number");
            }
            let secs = digits.parse::<u64>().unwrap_or(u64::MAX).min(1 << 31);
            return Ok(Some(Duration::from_secs(secs)));
        }
    }
    Ok(None)
}

/// `Expires` minus `Date` (or minus `now` without a valid `Date`); zero for a date in the
/// past or one that does not parse.
fn expires(headers: &HeaderMap, now: SystemTime) -> Result<Option<Duration>, &'static str> {
    let Some(value) = headers.get(header::EXPIRES) else {
        return Ok(None);
    };
    let date = |v: &http::HeaderValue| httpdate::parse_http_date(v.to_str().ok()?).ok();
    let Some(expires) = date(value) else {
        return Ok(Some(Duration::ZERO));
    };
    let base = headers.get(header::DATE).and_then(date).unwrap_or(now);
    Ok(Some(expires.duration_since(base).unwrap_or(Duration::ZERO)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lifetime(pairs: &[(&str, &str)]) -> Result<Option<u64>, &'static str> {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        shared_lifetime(&map, now).map(|l| l.map(|l| l.as_secs()))
    }

    fn forbids(pairs: &[(&str, &str)]) -> bool {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        forbids_stale(&map)
    }

    #[test]
    fn revalidation_directives_forbid_serving_stale() {
        assert!(!forbids(&[]));
        assert!(!forbids(&[("cache-control", "public, max-age=60")]));
        assert!(forbids(&[("cache-control", "max-age=60, must-revalidate")]));
        assert!(forbids(&[("cache-control", "Proxy-Revalidate")]));
        assert!(forbids(&[("cache-control", "s-maxage=60")]));
        assert!(forbids(&[("cdn-cache-control", "s-maxage=60")]));
        assert!(forbids(&[(
            "surrogate-control",
            "max-age=60, must-revalidate"
        )]));
        // Surrogate-Control's own max-age is not s-maxage.
        assert!(!forbids(&[("surrogate-control", "max-age=60")]));
        // Second line of the field.
        assert!(forbids(&[
            ("cache-control", "max-age=60"),
            ("cache-control", "must-revalidate")
        ]));
    }

    #[test]
    fn cache_control_shared_cache_reading() {
        assert_eq!(lifetime(&[]), Ok(None));
        assert_eq!(lifetime(&[("cache-control", "public")]), Ok(None));
        assert_eq!(lifetime(&[("cache-control", "max-age=60")]), Ok(Some(60)));
        assert_eq!(
            lifetime(&[("cache-control", "max-age=600, S-MAXAGE=5")]),
            Ok(Some(5)),
            "s-maxage wins in a shared cache"
        );
        assert!(lifetime(&[("cache-control", "max-age=0")]).is_err());
        assert!(lifetime(&[("cache-control", "max-age=60, s-maxage=0")]).is_err());
        assert!(lifetime(&[("cache-control", "max-age=\"0\"")]).is_err());
        assert!(lifetime(&[("cache-control", "max-age=soon")]).is_err());
        assert!(lifetime(&[("cache-control", "max-age")]).is_err());
        assert!(lifetime(&[("cache-control", "no-cache=\"set-cookie\"")]).is_err());
        assert!(lifetime(&[("cache-control", "private=\"x\", max-age=60")]).is_err());
        assert_eq!(
            lifetime(&[("cache-control", "max-age=5, must-revalidate")]),
            Ok(Some(5))
        );
        assert_eq!(
            lifetime(&[("cache-control", "max-age=99999999999999999999")]),
            Ok(Some(1 << 31))
        );
    }

    #[test]
    fn targeted_fields_come_first() {
        let both = [
            ("cache-control", "max-age=600"),
            ("surrogate-control", "max-age=5"),
        ];
        assert_eq!(lifetime(&both), Ok(Some(5)));
        let cdn = [
            ("cache-control", "max-age=600"),
            ("CDN-Cache-Control", "max-age=7"),
        ];
        assert_eq!(lifetime(&cdn), Ok(Some(7)));
        let all = [
            ("cache-control", "max-age=600"),
            ("cdn-cache-control", "max-age=7"),
            ("surrogate-control", "max-age=3"),
        ];
        assert_eq!(lifetime(&all), Ok(Some(3)));
        assert!(
            lifetime(&[
                ("surrogate-control", "no-store"),
                ("cache-control", "max-age=60")
            ])
            .is_err()
        );
        assert!(
            lifetime(&[
                ("cdn-cache-control", "max-age=0"),
                ("cache-control", "max-age=60")
            ])
            .is_err()
        );
        assert!(
            lifetime(&[
                ("surrogate-control", "max-age=60"),
                ("cache-control", "private")
            ])
            .is_err(),
            "the most restrictive directive wins"
        );
    }

    #[test]
    fn expires_is_read_against_date() {
        let date = httpdate::fmt_http_date(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000));
        let expires = httpdate::fmt_http_date(SystemTime::UNIX_EPOCH + Duration::from_secs(1_030));
        assert_eq!(
            lifetime(&[("date", &date), ("expires", &expires)]),
            Ok(Some(30))
        );
        assert!(
            lifetime(&[("expires", &expires)]).is_err(),
            "in the past, now"
        );
        assert!(
            lifetime(&[("expires", "0")]).is_err(),
            "invalid is in the past"
        );
        assert_eq!(
            lifetime(&[("expires", "0"), ("cache-control", "max-age=9")]),
            Ok(Some(9)),
            "max-age wins over Expires"
        );
    }
}
