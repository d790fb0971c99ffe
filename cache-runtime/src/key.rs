//! Cache keys: `{prefix}:{version}:{name}:{args}`, with an injective argument encoding.
//!
//! Arguments are encoded through serde into a short, readable text in which the
//! separators (`:` between key parts, `,` between arguments, brackets inside values)
//! never come from user data: every such character inside a string is percent-escaped.
//! So two different argument tuples of one function never produce the same key,
//! whatever characters the values hold.
//!
//! | value                | encoding                       |
//! |----------------------|--------------------------------|
//! | `true` / `false`     | `t` / `f`                      |
//! | integers, floats     | decimal (`42`, `-1`, `1.5`)    |
//! | `"alice"`            | `alice`                        |
//! | `""`, `"42"`, `"t"`  | `''`, `'42`, `'t` (quoted when it could read as another type) |
//! | `"a:b"`              | `a%3Ab`                        |
//! | `None` / `Some(x)`   | `~` / `x`                      |
//! | sequences, tuples    | `[a,b]`                        |
//! | maps, structs        | `{k=v,k=v}` (a map's entries sorted by their encoding) |
//! | `HashSet`, `IndexSet` | `[a,b]`, sorted by encoding   |
//! | enum variants        | `Name`, `Name(v)`, `Name[a,b]`, `Name{k=v}` |
//!
//! A key longer than [`MAX_KEY_LEN`] keeps a readable head and replaces the rest with
//! a SHA-256 digest of the whole key.

use std::fmt::Write as _;

use serde::Serialize;
use serde::ser::{self, Impossible};
use sha2::{Digest, Sha256};

use crate::error::Error;

/// Longest key stored as is; longer ones are hashed (memcached's limit, kind to Redis memory).
pub const MAX_KEY_LEN: usize = 250;
/// Bytes of the original key kept in front of the digest of a hashed key.
const HASHED_HEAD_LEN: usize = 160;

/// Characters escaped inside strings: every separator the encoding uses, `%` itself,
/// whitespace and control characters.
fn needs_escape(c: char) -> bool {
    matches!(
        c,
        '%' | ':'
            | ','
            | '\''
            | '~'
            | '+'
            | '('
            | ')'
            | '['
            | ']'
            | '{'
            | '}'
            | '='
            | '#'
            | '"'
            | '\\'
    ) || c.is_whitespace()
        || c.is_control()
}

/// Whether a string must be written with a leading `'` so it cannot read as a number,
/// bool, float or empty value.
fn needs_quote(s: &str) -> bool {
    match s.as_bytes().first() {
        None => true,
        Some(b) if b.is_ascii_digit() || *b == b'-' || *b == b'.' => true,
        _ => matches!(s, "t" | "f" | "inf" | "NaN"),
    }
}

fn write_str(out: &mut String, s: &str) {
    if needs_quote(s) {
        out.push('\'');
    }
    for c in s.chars() {
        if needs_escape(c) {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "%{b:02X}");
            }
        } else {
            out.push(c);
        }
    }
    if s.is_empty() {
        out.push('\'');
    }
}

/// Encodes one value into `out`.
pub fn encode_value<T: Serialize + ?Sized>(value: &T, out: &mut String) -> Result<(), Error> {
    value.serialize(ValueEncoder {
        out,
        set: is_set::<T>(),
    })
}

/// Whether `T` (behind any references) is a hash or insertion-ordered set, whose serde
/// sequence comes in an order that says nothing: `HashSet` (std, hashbrown) or `IndexSet`.
/// serde calls a set a sequence like any `Vec`, so the type's name is all there is to tell
/// them apart (`BTreeSet` needs nothing: it is sorted already).
fn is_set<T: ?Sized>() -> bool {
    let name = std::any::type_name::<T>().trim_start_matches('&');
    let path = name.split('<').next().unwrap_or(name);
    path.ends_with("::HashSet") || path.ends_with("::IndexSet")
}

/// Encodes an argument tuple: one string per tuple element (`()` gives none).
pub fn encode_args<A: Serialize + ?Sized>(args: &A) -> Result<Vec<String>, Error> {
    let mut parts = Vec::new();
    args.serialize(ArgsEncoder { parts: &mut parts })?;
    Ok(parts)
}

/// Bounds a key's length: past [`MAX_KEY_LEN`], a readable head plus `#` and a digest.
pub fn bound(key: String) -> String {
    if key.len() <= MAX_KEY_LEN {
        return key;
    }
    let mut cut = HASHED_HEAD_LEN;
    while !key.is_char_boundary(cut) {
        cut -= 1;
    }
    let digest = Sha256::digest(key.as_bytes());
    let mut out = String::with_capacity(cut + 1 + 64);
    out.push_str(&key[..cut]);
    out.push('#');
    for b in digest {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Where one cache's keys live: every stored key and generation name is built here.
///
/// On one Redis (and in memory):
///
/// | what | stored key |
/// |---|---|
/// | a value (query, page, `Cache::set`) | `{prefix}:{logical}` (see [`query`], [`view`], [`plain`]) |
/// | a generation counter | `{prefix}:gen:{name}` (see [`generation`]) |
/// | the lease of a value | `{prefix}:lease:{logical}` |
/// | the L1 protocol | `{prefix}:l1` (channel), `{prefix}:l1:instances`, `{prefix}:l1:ack:{id}` |
///
/// On a Redis Cluster ([`Layout::cluster`]) every value belongs to one of `B` *buckets*
/// (`crc16(logical) mod B`), each bucket pinned to one hash slot by a hash tag `{T}` (slots
/// evenly spaced over the 16,384, so buckets spread over the primaries as slots do), and
/// every generation counter has one copy per bucket, named `{name}@{bucket}` where values
/// record it. A value, its lease and the copies of every counter it records live in its
/// bucket's slot: a hit is one `MGET` on one node, an entry's invalidation one
/// `MULTI`/`EXEC` on one slot, and no counter is read by more than one bucket's values.
///
/// | what | stored key |
/// |---|---|
/// | a value | `{prefix}:{T}:{logical}` |
/// | copy `b` of a generation counter (recorded as `{name}@{b}`) | `{prefix}:{T_b}:gen:{name}` |
/// | the lease of a value | `{prefix}:{T}:lease:{logical}` |
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    /// `{prefix}:`, which every key of the cache starts with.
    root: String,
    /// `{prefix}:gen:`.
    gen_root: String,
    /// On a cluster: the hash tag of each bucket (`{T}:`, with braces and colon).
    buckets: Option<std::sync::Arc<[String]>>,
}

/// Hash slots of a Redis Cluster.
pub(crate) const SLOTS: usize = 16_384;

/// The hash slot of `key` on a Redis Cluster: CRC16 (XMODEM) of its hash tag, the text
/// between its first `{` and the next `}` when that is not empty, else of the whole key.
#[cfg_attr(not(feature = "cluster"), allow(dead_code))]
pub(crate) fn slot(key: &[u8]) -> usize {
    let tagged = key.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        let close = rest.iter().position(|&b| b == b'}')?;
        (close > 0).then(|| &rest[..close])
    });
    usize::from(crc16(tagged.unwrap_or(key))) % SLOTS
}

/// CRC16-CCITT (XMODEM), the hash of Redis Cluster.
fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The hash tags of `buckets` buckets (a power of two up to [`SLOTS`]), each `{T}:` with `T`
/// the shortest text of `[0-9a-z]` found whose slot is bucket `b`'s: `b × SLOTS / buckets`.
#[cfg_attr(not(feature = "cluster"), allow(dead_code))]
fn bucket_tags(buckets: usize) -> Vec<String> {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let stride = SLOTS / buckets;
    let mut tags = vec![String::new(); buckets];
    let mut missing = buckets;
    let mut text = Vec::with_capacity(4);
    'lengths: for len in 1..=4u32 {
        for n in 0..ALPHABET.len().pow(len) {
            text.clear();
            let mut rest = n;
            for _ in 0..len {
                text.push(ALPHABET[rest % ALPHABET.len()]);
                rest /= ALPHABET.len();
            }
            let slot = usize::from(crc16(&text)) % SLOTS;
            if slot.is_multiple_of(stride) && tags[slot / stride].is_empty() {
                let tag = std::str::from_utf8(&text).expect("ASCII");
                tags[slot / stride] = format!("{{{tag}}}:");
                missing -= 1;
                if missing == 0 {
                    break 'lengths;
                }
            }
        }
    }
    assert_eq!(
        missing, 0,
        "every slot has a tag of at most four characters"
    );
    tags
}

impl Layout {
    pub(crate) fn new(prefix: &str) -> Layout {
        Layout {
            root: format!("{prefix}:"),
            gen_root: format!("{prefix}:gen:"),
            buckets: None,
        }
    }

    /// The layout on a Redis Cluster, with `buckets` buckets (a power of two, 1 to
    /// [`SLOTS`]; checked by the builder).
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) fn cluster(prefix: &str, buckets: usize) -> Layout {
        debug_assert!(buckets.is_power_of_two() && buckets <= SLOTS);
        Layout {
            buckets: Some(bucket_tags(buckets).into()),
            ..Layout::new(prefix)
        }
    }

    /// The bucket of the value stored under `logical`, on a cluster.
    fn bucket(tags: &[String], logical: &str) -> usize {
        usize::from(crc16(logical.as_bytes())) % tags.len()
    }

    /// The stored key of a value: `{prefix}:{logical}` (on a cluster `{prefix}:{T}:{logical}`).
    pub(crate) fn entry(&self, logical: &str) -> String {
        let tag = match &self.buckets {
            Some(tags) => tags[Self::bucket(tags, logical)].as_str(),
            None => "",
        };
        let mut key = String::with_capacity(self.root.len() + tag.len() + logical.len());
        key.push_str(&self.root);
        key.push_str(tag);
        key.push_str(logical);
        key
    }

    /// The generation names a value stored under `logical` records, from the names of
    /// what it depends on (`own`, from [`generation`]): the same on one Redis; on a
    /// cluster each name's copy in the value's bucket, `{name}@{bucket}`.
    pub(crate) fn own(
        &self,
        logical: &str,
        mut own: Vec<(String, Option<std::time::Duration>)>,
    ) -> Vec<(String, Option<std::time::Duration>)> {
        if let Some(tags) = &self.buckets {
            let bucket = Self::bucket(tags, logical);
            for (name, _) in &mut own {
                let _ = write!(name, "@{bucket}");
            }
        }
        own
    }

    /// The stored key of a generation counter: `{prefix}:gen:{name}`; on a cluster, for a
    /// name recorded as `{name}@{bucket}`, `{prefix}:{T_bucket}:gen:{name}`.
    pub(crate) fn generation(&self, name: &str) -> String {
        let copy = self.buckets.as_ref().and_then(|tags| {
            let (base, bucket) = name.rsplit_once('@')?;
            let tag = tags.get(bucket.parse::<usize>().ok()?)?;
            Some((base, tag.as_str()))
        });
        let Some((base, tag)) = copy else {
            let mut key = String::with_capacity(self.gen_root.len() + name.len());
            key.push_str(&self.gen_root);
            key.push_str(name);
            return key;
        };
        let mut key = String::with_capacity(self.root.len() + tag.len() + 4 + base.len());
        key.push_str(&self.root);
        key.push_str(tag);
        key.push_str("gen:");
        key.push_str(base);
        key
    }

    /// The stored keys an invalidation of the generation `name` (unqualified, from
    /// [`generation`]) replaces: the one counter on one Redis; on a cluster, the copy in
    /// the bucket of `entry` (a stored key from [`Layout::entry`], for an entry's own
    /// counter), or else the copy in every bucket.
    pub(crate) fn replaced(&self, name: &str, entry: Option<&str>) -> Vec<String> {
        let Some(tags) = &self.buckets else {
            return vec![self.generation(name)];
        };
        let logical = entry.and_then(|e| e.strip_prefix(self.root.as_str()));
        let logical = logical.map(|rest| match rest.find("}:") {
            Some(end) if rest.starts_with('{') => &rest[end + 2..],
            _ => rest,
        });
        match logical {
            Some(logical) => {
                vec![self.generation(&format!("{name}@{}", Self::bucket(tags, logical)))]
            }
            None => (0..tags.len())
                .map(|b| self.generation(&format!("{name}@{b}")))
                .collect(),
        }
    }

    /// The key of the lease of the value stored under `entry` (a key from [`Layout::entry`]):
    /// `{prefix}:lease:{logical}` (on a cluster `{prefix}:{T}:lease:{logical}`, in the
    /// value's slot).
    pub(crate) fn lease(&self, entry: &str) -> String {
        let rest = entry.strip_prefix(&self.root).unwrap_or(entry);
        let (tag, logical) = match rest.find("}:") {
            Some(end) if self.buckets.is_some() && rest.starts_with('{') => rest.split_at(end + 2),
            _ => ("", rest),
        };
        let mut key = String::with_capacity(self.root.len() + tag.len() + 6 + logical.len());
        key.push_str(&self.root);
        key.push_str(tag);
        key.push_str("lease:");
        key.push_str(logical);
        key
    }

    /// What the L1 protocol's keys start with: `{prefix}:l1:`.
    pub(crate) fn l1_root(&self) -> String {
        format!("{}l1:", self.root)
    }

    /// How many buckets the keys are spread over: 0 off a cluster.
    pub(crate) fn buckets(&self) -> usize {
        self.buckets.as_ref().map_or(0, |tags| tags.len())
    }

    /// On a cluster, the bucket of a stored key (a value, a lease or a counter's copy) from
    /// its hash tag; `None` elsewhere and for keys of no bucket.
    pub(crate) fn bucket_of(&self, stored: &str) -> Option<usize> {
        let tags = self.buckets.as_ref()?;
        let tag = stored.strip_prefix(self.root.as_str())?.strip_prefix('{')?;
        let tag = &tag[..tag.find('}')?];
        let slot = usize::from(crc16(tag.as_bytes())) % SLOTS;
        let stride = SLOTS / tags.len();
        slot.is_multiple_of(stride).then_some(slot / stride)
    }

    /// What every key of this cache starts with.
    pub(crate) fn root(&self) -> &str {
        &self.root
    }

    /// What a stored key of this cache holds, read back from its shape (for tools that list
    /// keys: `cachectl`, the dashboard). `None` for keys of another prefix.
    ///
    /// | stored key | read as |
    /// |---|---|
    /// | `{prefix}:gen:{name}` | [`Stored::Generation`]`(name)` |
    /// | `{prefix}:{version}:view:{function}:{request}` | [`Stored::View`]`(function)` |
    /// | `{prefix}:{version}:{name}[:{args}]` | [`Stored::Value`]`(name)`: the function path, or a `key` template's head up to its first `:` |
    /// | anything else under the prefix | [`Stored::Other`] |
    ///
    /// On a cluster, the bucket's tag after the prefix is skipped first.
    pub(crate) fn read<'k>(&self, stored: &'k str) -> Option<Stored<'k>> {
        let mut rest = stored.strip_prefix(self.root.as_str())?;
        if self.buckets.is_some()
            && rest.starts_with('{')
            && let Some(end) = rest.find("}:")
        {
            rest = &rest[end + 2..];
        }
        if let Some(name) = rest.strip_prefix("gen:") {
            return Some(Stored::Generation(name));
        }
        let Some((version, logical)) = rest.split_once(':') else {
            return Some(Stored::Other);
        };
        if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) {
            return Some(Stored::Other);
        }
        Some(match logical.strip_prefix("view:") {
            Some(view) => Stored::View(head(view)),
            None => Stored::Value(head(logical)),
        })
    }
}

/// What a stored key holds, by its shape (see [`Layout::read`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stored<'k> {
    /// A query's value (or a `Cache::set` value), by the name its key starts with.
    Value(&'k str),
    /// A view's response, by the view's function path (`layer` for a `CacheLayer`).
    View(&'k str),
    /// A generation counter, by its name (see [`generation`]).
    Generation(&'k str),
    /// Something else under the prefix.
    Other,
}

/// The head of a logical name: up to its first `:` that is not half of a path's `::`
/// (arguments never hold a `:`, it is escaped).
fn head(logical: &str) -> &str {
    let bytes = logical.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b':' {
            if bytes.get(i + 1) == Some(&b':') {
                i += 2;
                continue;
            }
            return &logical[..i];
        }
        i += 1;
    }
    logical
}

/// The logical key of a `#[cached_query]` call: `{version}:{function}[:{arg},{arg}...]`, or
/// with a template `{version}:{template with the args}`. `None` when the template's pieces
/// do not fit the arguments.
pub(crate) fn query(
    version: u64,
    function: &str,
    template: Option<&[&str]>,
    parts: &[String],
) -> Option<String> {
    let mut out = String::with_capacity(64);
    let _ = write!(out, "{version}:");
    match template {
        Some(pieces) => {
            let (first, rest) = pieces.split_first()?;
            if rest.len() != parts.len() {
                return None;
            }
            out.push_str(first);
            for (part, piece) in parts.iter().zip(rest) {
                out.push_str(part);
                out.push_str(piece);
            }
        }
        None => {
            out.push_str(function);
            for (i, part) in parts.iter().enumerate() {
                out.push(if i == 0 { ':' } else { ',' });
                out.push_str(part);
            }
        }
    }
    Some(bound(out))
}

/// Fills the placeholders of tag templates (split at compile time), in order, with `parts`.
/// `None` when they do not fit.
pub(crate) fn tags(templates: &[&[&str]], parts: &[String]) -> Option<Vec<String>> {
    let mut parts = parts.iter();
    let mut tags = Vec::with_capacity(templates.len());
    for pieces in templates {
        let (first, rest) = pieces.split_first()?;
        let mut tag = String::with_capacity(pieces.iter().map(|p| p.len() + 8).sum());
        tag.push_str(first);
        for piece in rest {
            tag.push_str(parts.next()?);
            tag.push_str(piece);
        }
        tags.push(tag);
    }
    parts.next().is_none().then_some(tags)
}

#[cfg(feature = "view")]
/// The logical key of a response: `{version}:view:{name}:{request}`, where `request` is the
/// request's own injective encoding (method, URL, `vary` headers).
pub(crate) fn view(version: u64, name: &str, request: &str) -> String {
    let mut out = String::with_capacity(26 + name.len() + request.len());
    let _ = write!(out, "{version}");
    bound(concat(out, &[":view:", name, ":", request]))
}

/// `parts` appended to `out`, in one allocation (`format!` grows its string piece by
/// piece, on every hit).
pub(crate) fn concat(mut out: String, parts: &[&str]) -> String {
    out.reserve(parts.iter().map(|p| p.len()).sum());
    for part in parts {
        out.push_str(part);
    }
    out
}

/// The logical key of a Django-style `Cache::set(key)`: `1:{key}`.
pub(crate) fn plain(key: &str) -> String {
    bound(format!("1:{key}"))
}

/// Names of generation counters (stored under [`Layout::generation`]).
pub(crate) mod generation {
    use super::{bound, concat};

    /// Every value of the cache (`Cache::invalidate_all`).
    pub(crate) const ALL: &str = "all";

    /// Every entry of one query function.
    pub(crate) fn query(function: &str) -> String {
        bound(concat(String::new(), &["q:", function]))
    }
    /// One entry, by its logical key.
    pub(crate) fn entry(logical: &str) -> String {
        bound(concat(String::new(), &["e:", logical]))
    }
    /// Every value carrying a tag.
    pub(crate) fn tag(tag: &str) -> String {
        bound(concat(String::new(), &["t:", tag]))
    }
    /// Every response of one view (or of a `CacheLayer`).
    #[cfg(feature = "view")]
    pub(crate) fn view(function: &str) -> String {
        bound(concat(String::new(), &["v:", function]))
    }
    /// The responses of one view for one path.
    #[cfg(feature = "view")]
    pub(crate) fn path(function: &str, path: &str) -> String {
        bound(concat(String::new(), &["p:", function, ":", path]))
    }

    /// What a generation name invalidates, as a metric label: `all`, `query`, `entry`,
    /// `tag`, `view`, `path` (`other` for a name not built here).
    pub(crate) fn kind(name: &str) -> &'static str {
        if name == ALL {
            return "all";
        }
        match name.split_once(':').map(|(k, _)| k) {
            Some("q") => "query",
            Some("e") => "entry",
            Some("t") => "tag",
            Some("v") => "view",
            Some("p") => "path",
            _ => "other",
        }
    }
}

struct ValueEncoder<'a> {
    out: &'a mut String,
    /// The value is a set: its elements are written sorted.
    set: bool,
}

/// Writes a sequence-like body: `open`, items separated by `,`, `close`. The items of a
/// map or a set are collected and written sorted (by their encoding), so two equal maps
/// or sets give one key whatever order they iterate in.
struct Seq<'a> {
    out: &'a mut String,
    first: bool,
    close: char,
    /// `Some` for maps and sets: each item's encoding (`k=v` for a map), sorted at the end.
    sorted: Option<Vec<String>>,
}

impl Seq<'_> {
    fn sep(&mut self) {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
    }
}

impl<'a> ValueEncoder<'a> {
    fn seq(self, open: &str, close: char) -> Seq<'a> {
        self.out.push_str(open);
        Seq {
            out: self.out,
            first: true,
            close,
            sorted: None,
        }
    }

    fn sorted_seq(self, open: &str, close: char) -> Seq<'a> {
        let mut seq = self.seq(open, close);
        seq.sorted = Some(Vec::new());
        seq
    }
}

macro_rules! display_scalar {
    ($($method:ident: $ty:ty),*) => {$(
        fn $method(self, v: $ty) -> Result<(), Error> {
            let _ = write!(self.out, "{v}");
            Ok(())
        }
    )*};
}

impl<'a> ser::Serializer for ValueEncoder<'a> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Seq<'a>;
    type SerializeTuple = Seq<'a>;
    type SerializeTupleStruct = Seq<'a>;
    type SerializeTupleVariant = Seq<'a>;
    type SerializeMap = Seq<'a>;
    type SerializeStruct = Seq<'a>;
    type SerializeStructVariant = Seq<'a>;

    display_scalar!(
        serialize_i8: i8, serialize_i16: i16, serialize_i32: i32, serialize_i64: i64,
        serialize_i128: i128, serialize_u8: u8, serialize_u16: u16, serialize_u32: u32,
        serialize_u64: u64, serialize_u128: u128
    );

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.out.push(if v { 't' } else { 'f' });
        Ok(())
    }
    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        // Debug prints the shortest text that reads back as the same float.
        let _ = write!(self.out, "{v:?}");
        Ok(())
    }
    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        let _ = write!(self.out, "{v:?}");
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        write_str(self.out, v.encode_utf8(&mut [0u8; 4]));
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        write_str(self.out, v);
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        self.out.push('x');
        for b in v {
            let _ = write!(self.out, "{b:02x}");
        }
        Ok(())
    }
    fn serialize_none(self) -> Result<(), Error> {
        self.out.push('~');
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        // `Some(x)` is written as `x`; only when `x` itself starts like an option
        // (`~` or `+`, i.e. nested options) a `+` keeps `Some(None)` apart from `None`.
        let mut inner = String::new();
        encode_value(value, &mut inner)?;
        if inner.starts_with(['~', '+']) {
            self.out.push('+');
        }
        self.out.push_str(&inner);
        Ok(())
    }
    fn serialize_unit(self) -> Result<(), Error> {
        self.out.push_str("()");
        Ok(())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        self.serialize_unit()
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        write_str(self.out, variant);
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        encode_value(value, self.out)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        write_str(self.out, variant);
        self.out.push('(');
        encode_value(value, self.out)?;
        self.out.push(')');
        Ok(())
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Seq<'a>, Error> {
        Ok(if self.set {
            self.sorted_seq("[", ']')
        } else {
            self.seq("[", ']')
        })
    }
    fn serialize_tuple(self, _len: usize) -> Result<Seq<'a>, Error> {
        Ok(self.seq("[", ']'))
    }
    fn serialize_tuple_struct(self, _name: &'static str, _len: usize) -> Result<Seq<'a>, Error> {
        Ok(self.seq("[", ']'))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Seq<'a>, Error> {
        write_str(self.out, variant);
        Ok(self.seq("[", ']'))
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Seq<'a>, Error> {
        Ok(self.sorted_seq("{", '}'))
    }
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Seq<'a>, Error> {
        Ok(self.seq("{", '}'))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Seq<'a>, Error> {
        write_str(self.out, variant);
        Ok(self.seq("{", '}'))
    }
}

impl Seq<'_> {
    fn item<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        if let Some(items) = &mut self.sorted {
            let mut item = String::new();
            encode_value(value, &mut item)?;
            items.push(item);
            return Ok(());
        }
        self.sep();
        encode_value(value, self.out)
    }
    fn field<T: Serialize + ?Sized>(&mut self, name: &str, value: &T) -> Result<(), Error> {
        self.sep();
        write_str(self.out, name);
        self.out.push('=');
        encode_value(value, self.out)
    }
    fn finish(mut self) -> Result<(), Error> {
        if let Some(mut items) = self.sorted.take() {
            items.sort_unstable();
            for item in items {
                self.sep();
                self.out.push_str(&item);
            }
        }
        self.out.push(self.close);
        Ok(())
    }
}

macro_rules! seq_impl {
    ($($trait:ident :: $method:ident),*) => {$(
        impl ser::$trait for Seq<'_> {
            type Ok = ();
            type Error = Error;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
                self.item(value)
            }
            fn end(self) -> Result<(), Error> {
                self.finish()
            }
        }
    )*};
}
seq_impl!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

macro_rules! struct_impl {
    ($($trait:ident),*) => {$(
        impl ser::$trait for Seq<'_> {
            type Ok = ();
            type Error = Error;
            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                key: &'static str,
                value: &T,
            ) -> Result<(), Error> {
                self.field(key, value)
            }
            fn end(self) -> Result<(), Error> {
                self.finish()
            }
        }
    )*};
}
struct_impl!(SerializeStruct, SerializeStructVariant);

impl ser::SerializeMap for Seq<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        self.item(key)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        // A map's items are collected: its value joins the key `serialize_key` pushed.
        let out = match &mut self.sorted {
            Some(items) => items
                .last_mut()
                .ok_or_else(|| <Error as ser::Error>::custom("a map value came before its key"))?,
            None => &mut *self.out,
        };
        out.push('=');
        encode_value(value, out)
    }
    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

/// The top level: a tuple of argument references, each encoded on its own.
struct ArgsEncoder<'a> {
    parts: &'a mut Vec<String>,
}

impl ser::SerializeTuple for ArgsEncoder<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        let mut s = String::new();
        encode_value(value, &mut s)?;
        self.parts.push(s);
        Ok(())
    }
    fn end(self) -> Result<(), Error> {
        Ok(())
    }
}

macro_rules! args_only {
    ($($method:ident($($arg:ty),*) -> $ret:ty;)*) => {$(
        fn $method(self, $(_: $arg),*) -> Result<$ret, Error> {
            Err(<Error as ser::Error>::custom("key arguments must be passed as a tuple"))
        }
    )*};
}

impl<'a> ser::Serializer for ArgsEncoder<'a> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Impossible<(), Error>;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Impossible<(), Error>;
    type SerializeTupleVariant = Impossible<(), Error>;
    type SerializeMap = Impossible<(), Error>;
    type SerializeStruct = Impossible<(), Error>;
    type SerializeStructVariant = Impossible<(), Error>;

    fn serialize_tuple(self, _len: usize) -> Result<Self, Error> {
        Ok(self)
    }
    fn serialize_unit(self) -> Result<(), Error> {
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _value: &T,
    ) -> Result<(), Error> {
        Err(<Error as ser::Error>::custom(
            "key arguments must be passed as a tuple",
        ))
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _value: &T) -> Result<(), Error> {
        Err(<Error as ser::Error>::custom(
            "key arguments must be passed as a tuple",
        ))
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<(), Error> {
        Err(<Error as ser::Error>::custom(
            "key arguments must be passed as a tuple",
        ))
    }
    args_only! {
        serialize_bool(bool) -> ();
        serialize_i8(i8) -> (); serialize_i16(i16) -> (); serialize_i32(i32) -> (); serialize_i64(i64) -> ();
        serialize_u8(u8) -> (); serialize_u16(u16) -> (); serialize_u32(u32) -> (); serialize_u64(u64) -> ();
        serialize_f32(f32) -> (); serialize_f64(f64) -> (); serialize_char(char) -> ();
        serialize_str(&str) -> (); serialize_bytes(&[u8]) -> (); serialize_none() -> ();
        serialize_unit_struct(&'static str) -> ();
        serialize_unit_variant(&'static str, u32, &'static str) -> ();
        serialize_seq(Option<usize>) -> Impossible<(), Error>;
        serialize_tuple_struct(&'static str, usize) -> Impossible<(), Error>;
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Impossible<(), Error>;
        serialize_map(Option<usize>) -> Impossible<(), Error>;
        serialize_struct(&'static str, usize) -> Impossible<(), Error>;
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Impossible<(), Error>;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;

    fn enc<T: Serialize>(v: T) -> String {
        let mut s = String::new();
        encode_value(&v, &mut s).unwrap();
        s
    }

    #[derive(Serialize)]
    struct User {
        id: u32,
        name: &'static str,
    }

    #[derive(Serialize)]
    enum Filter {
        All,
        Id(u32),
        Range(u32, u32),
        Named { name: String },
    }

    #[test]
    fn scalars_are_readable() {
        assert_eq!(enc(42u32), "42");
        assert_eq!(enc(-7i64), "-7");
        assert_eq!(enc(true), "t");
        assert_eq!(enc(1.5f64), "1.5");
        assert_eq!(enc("alice"), "alice");
        assert_eq!(enc("alice@example.com"), "alice@example.com");
        assert_eq!(enc("héllo"), "héllo");
    }

    #[test]
    fn strings_that_could_read_as_other_types_are_quoted() {
        assert_eq!(enc(""), "''");
        assert_eq!(enc("42"), "'42");
        assert_eq!(enc("t"), "'t");
        assert_eq!(enc("-x"), "'-x");
    }

    #[test]
    fn separators_are_escaped() {
        assert_eq!(enc("a:b"), "a%3Ab");
        assert_eq!(enc("a,b"), "a%2Cb");
        assert_eq!(enc("50%"), "'50%25");
        assert_eq!(enc("a b"), "a%20b");
    }

    #[test]
    fn options_nest_without_ambiguity() {
        assert_eq!(enc(None::<u32>), "~");
        assert_eq!(enc(Some(3u32)), "3");
        assert_eq!(enc(Some(None::<u32>)), "+~");
        assert_eq!(enc(Some(Some(3u32))), "3");
        assert_ne!(enc(Some("~")), enc(None::<&str>));
    }

    #[test]
    fn composites() {
        assert_eq!(enc(vec![1, 2]), "[1,2]");
        assert_eq!(enc((1, "a")), "[1,a]");
        assert_eq!(enc(User { id: 1, name: "bo" }), "{id=1,name=bo}");
        assert_eq!(enc(Filter::All), "All");
        assert_eq!(enc(Filter::Id(3)), "Id(3)");
        assert_eq!(enc(Filter::Range(1, 2)), "Range[1,2]");
        assert_eq!(enc(Filter::Named { name: "x".into() }), "Named{name=x}");
        let map: std::collections::BTreeMap<&str, u32> = [("a", 1), ("b", 2)].into();
        assert_eq!(enc(map), "{a=1,b=2}");
    }

    #[test]
    fn args_tuple() {
        assert_eq!(encode_args(&()).unwrap(), Vec::<String>::new());
        assert_eq!(encode_args(&(&1u32, &"a:b")).unwrap(), vec!["1", "a%3Ab"]);
        assert!(encode_args(&5u32).is_err());
    }

    #[test]
    fn stored_keys_read_back_as_what_they_hold() {
        let layout = Layout::new("app");
        let value = layout.entry(&query(1, "app::users::get", None, &["7".into()]).unwrap());
        assert_eq!(layout.read(&value), Some(Stored::Value("app::users::get")));
        let templated = ["user:", ":posts"];
        let logical = query(2, "f", Some(&templated[..]), &["a%3Ab".into()]).unwrap();
        assert_eq!(
            layout.read(&layout.entry(&logical)),
            Some(Stored::Value("user"))
        );
        let plain = layout.entry(&plain("greeting"));
        assert_eq!(layout.read(&plain), Some(Stored::Value("greeting")));
        let counter = layout.generation(&generation::query("app::f"));
        assert_eq!(layout.read(&counter), Some(Stored::Generation("q:app::f")));
        assert_eq!(layout.read("other:1:x"), None);
        assert_eq!(layout.read("app:x:y"), Some(Stored::Other));
        #[cfg(feature = "view")]
        {
            let page = layout.entry(&view(1, "app::views::page", "GET:http://h/p?q=1"));
            assert_eq!(layout.read(&page), Some(Stored::View("app::views::page")));
        }
    }

    #[test]
    fn slots_are_redis_cluster_slots() {
        // The check value of CRC16/XMODEM, and slots `CLUSTER KEYSLOT` gives.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"{user1000}.following"), slot(b"{user1000}.followers"));
        assert_eq!(
            slot(b"foo{}{bar}"),
            usize::from(crc16(b"foo{}{bar}")) % SLOTS
        );
        assert_eq!(slot(b"foo{{bar}}zap"), slot(b"{bar"));
    }

    #[test]
    fn bucket_tags_pin_evenly_spaced_slots() {
        for buckets in [1, 3 + 1, 64, SLOTS] {
            let tags = bucket_tags(buckets);
            for (b, tag) in tags.iter().enumerate() {
                assert!(tag.len() <= 7 && tag.ends_with("}:"), "{tag}");
                assert_eq!(slot(tag.as_bytes()), b * (SLOTS / buckets), "{tag}");
            }
        }
    }

    #[test]
    fn a_value_its_lease_and_its_counters_share_a_slot_on_a_cluster() {
        let layout = Layout::cluster("app", 64);
        let logical = query(1, "app::users::get", None, &["7".into()]).unwrap();
        let entry = layout.entry(&logical);
        assert!(entry.starts_with("app:{") && entry.ends_with("}:1:app::users::get:7"));
        let own = layout.own(
            &logical,
            vec![
                (generation::ALL.to_owned(), None),
                (generation::entry(&logical), None),
            ],
        );
        let bucket = layout.bucket_of(&entry).unwrap();
        assert_eq!(own[0].0, format!("all@{bucket}"));
        let counters: Vec<String> = own.iter().map(|(n, _)| layout.generation(n)).collect();
        for key in counters.iter().chain([&layout.lease(&entry)]) {
            assert_eq!(slot(key.as_bytes()), slot(entry.as_bytes()), "{key}");
            assert_eq!(layout.bucket_of(key), Some(bucket));
        }
        assert!(
            layout
                .lease(&entry)
                .ends_with("}:lease:1:app::users::get:7")
        );
        // An entry's invalidation replaces its own copy, beside it; a shared counter's, all.
        let name = generation::entry(&logical);
        assert_eq!(layout.replaced(&name, Some(&entry)), [counters[1].clone()]);
        let all = layout.replaced(generation::ALL, None);
        assert_eq!(all.len(), 64);
        assert!(all.contains(&counters[0]));
        // Read back as on one Redis.
        assert_eq!(layout.read(&entry), Some(Stored::Value("app::users::get")));
        assert_eq!(layout.read(&counters[0]), Some(Stored::Generation("all")));
        // Values of one function spread over the buckets.
        let buckets: std::collections::BTreeSet<usize> = (0..1000)
            .map(|i| {
                let logical = query(1, "f", None, &[i.to_string()]).unwrap();
                layout.bucket_of(&layout.entry(&logical)).unwrap()
            })
            .collect();
        assert_eq!(buckets.len(), 64);
        // One Redis: nothing changes.
        let single = Layout::new("app");
        assert_eq!(single.own(&logical, vec![("all".into(), None)])[0].0, "all");
        assert_eq!(single.replaced("all", None), ["app:gen:all"]);
        assert_eq!(single.bucket_of(&single.entry(&logical)), None);
    }

    #[test]
    fn generation_kinds() {
        assert_eq!(generation::kind(generation::ALL), "all");
        assert_eq!(generation::kind(&generation::query("a::b")), "query");
        assert_eq!(generation::kind(&generation::entry("1:a")), "entry");
        assert_eq!(generation::kind(&generation::tag("user:1")), "tag");
        assert_eq!(generation::kind("zzz"), "other");
    }

    #[test]
    fn long_keys_keep_a_head_and_hash_the_rest() {
        let long = format!(":1:q:{}", "é".repeat(300));
        let bounded = bound(long.clone());
        assert!(bounded.len() <= MAX_KEY_LEN);
        assert!(bounded.starts_with(":1:q:é"));
        assert_ne!(bound(format!("{long}x")), bounded);
        assert_eq!(bound("short".into()), "short");
    }
}
