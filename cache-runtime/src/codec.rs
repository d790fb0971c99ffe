//! Value codecs: how a cached value becomes bytes.
//!
//! | codec        | feature    | id | round-trips                                   |
//! |--------------|------------|----|-----------------------------------------------|
//! | [`MsgPack`]  | (default)  | 1  | every serde feature: `flatten`, `skip_serializing_if`, tagged and untagged enums, `serde_json::Value` |
//! | [`Postcard`] | `postcard` | 2  | plain structs and enums only (no self-describing features) |
//! | [`Bincode`]  | `bincode`  | 3  | like postcard; bincode is unmaintained upstream (RUSTSEC-2025-0141) |
//! | [`Json`]     | `json`     | 4  | like MessagePack, readable in `redis-cli`, larger and slower |
//!
//! A cache has one default ([`CodecKind`], set with
//! [`CacheBuilder::codec`](crate::CacheBuilder::codec)); a function can override it with
//! `#[cached_query(codec = postcard)]` or with its own type implementing [`Codec`].
//! Every value records its codec id, so a value written by another codec is a miss,
//! never a wrong decode.
//!
//! **Safe across deploys.** The default writes a cached function's value in the compact,
//! positional MessagePack form (no field names: 40% smaller and faster to read) when the
//! value reads back identically; the value records the schema fingerprint it was read back
//! with (see the `schema` module), and a reader whose types changed in any way (a field added,
//! removed, reordered or renamed, a variant added) reads another fingerprint: a miss, never a
//! wrong value. Values of types with self-describing features (untagged or internally
//! tagged enums, `flatten`, `serde_json::Value`, `skip_serializing_if`, `HashMap`s) keep
//! field names, and serde's rules apply (`#[serde(default)]` fields read as their
//! default). postcard and bincode are positional and record nothing: bump `version` when the
//! type of a function using them changes.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, ErrorKind, Result};

/// A serialization format for cached values.
///
/// Implement it to plug in your own format; use an id from 128 to 255
/// (ids below 128 belong to the built-in codecs).
///
/// ```
/// use cache_runtime::codec::Codec;
///
/// /// Stores values as CBOR-like JSON text, for the sake of the example.
/// struct MyJson;
///
/// impl Codec for MyJson {
///     const ID: u8 = 200;
///     fn encode<T: serde::Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> cache_runtime::Result<()> {
///         cache_runtime::codec::MsgPack::encode(value, out) // delegate, to keep the example short
///     }
///     fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> cache_runtime::Result<T> {
///         cache_runtime::codec::MsgPack::decode(bytes)
///     }
/// }
///
/// let mut buf = Vec::new();
/// MyJson::encode(&vec![1, 2, 3], &mut buf).unwrap();
/// assert_eq!(MyJson::decode::<Vec<u32>>(&buf).unwrap(), vec![1, 2, 3]);
/// ```
pub trait Codec: 'static {
    /// How cached functions' values are written with this codec (only [`MsgPack`] adapts).
    #[doc(hidden)]
    const LAYOUT: Layout = Layout::Plain;
    /// The id recorded in every value's envelope.
    const ID: u8;
    /// Appends the encoding of `value` to `out`.
    fn encode<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<()>;
    /// Decodes a whole buffer; any error makes the read a miss.
    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T>;
}

/// How a codec's payloads depend on the value's type.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Written as the codec writes it (for positional codecs, postcard and bincode, a type
    /// that changes needs a `version` bump).
    Plain,
    /// Positional when the value reads back identically and fully noted (see
    /// the `schema` module), with field names otherwise ([`MsgPack`]).
    Adaptive,
}

/// Encodes a cached function's value with `C`; returns the schema fingerprint the payload
/// depends on (0: none).
pub(crate) fn encode_typed<C: Codec, T: Serialize + DeserializeOwned>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<u64> {
    if C::LAYOUT == Layout::Adaptive {
        let start = out.len();
        if MsgPack::encode_positional(value, out).is_ok()
            && let Some(fingerprint) = reads_back::<T>(&out[start..])
        {
            return Ok(fingerprint);
        }
        out.truncate(start);
    }
    C::encode(value, out).map(|()| 0)
}

/// The fingerprint of a fresh positional payload, when it decodes to a value that encodes to
/// the very same bytes and every container it holds was noted. Not so when the type's
/// `Serialize` leaves out what its `Deserialize` expects (`skip_serializing_if`), writes maps
/// in an order of the moment (`HashMap`), or the type reads through `deserialize_any`: such
/// a value keeps its field names.
fn reads_back<T: Serialize + DeserializeOwned>(payload: &[u8]) -> Option<u64> {
    let mut de = rmp_serde::Deserializer::from_read_ref(payload);
    let (value, shapes) = crate::schema::decode::<T, _>(&mut de).ok()?;
    if shapes.opaque() {
        return None;
    }
    let mut again = Vec::with_capacity(payload.len());
    MsgPack::encode_positional(&value, &mut again).ok()?;
    (again == payload).then(|| shapes.fingerprint())
}

/// Decodes a payload written with `fingerprint` (0: none); a positional payload read as
/// another schema means the type changed since: an error (a miss).
pub(crate) fn decode_typed<C: Codec, T: DeserializeOwned>(
    bytes: &[u8],
    fingerprint: u64,
) -> Result<T> {
    if fingerprint == 0 {
        return C::decode(bytes);
    }
    let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
    let (value, shapes) =
        crate::schema::decode::<T, _>(&mut de).map_err(|e| codec_error("msgpack decode", e))?;
    if shapes.opaque() || shapes.fingerprint() != fingerprint {
        return Err(Error::new(
            ErrorKind::Codec,
            "the value was written by another version of its type",
        ));
    }
    Ok(value)
}

fn codec_error(what: &str, e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::with_source(ErrorKind::Codec, what.to_string(), e)
}

/// MessagePack (`rmp-serde`), the default: round-trips every serde feature. Its plain
/// [`Codec::encode`] writes field names; cached functions store the compact positional form
/// when it is safe (see [the module](self)).
#[derive(Debug, Clone, Copy, Default)]
pub struct MsgPack;

impl MsgPack {
    /// The positional form: structs as arrays, no field names.
    fn encode_positional<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<()> {
        value
            .serialize(&mut rmp_serde::Serializer::new(out))
            .map_err(|e| codec_error("msgpack encode", e))
    }
}

impl Codec for MsgPack {
    const ID: u8 = 1;
    const LAYOUT: Layout = Layout::Adaptive;
    fn encode<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<()> {
        let mut ser = rmp_serde::Serializer::new(out).with_struct_map();
        value
            .serialize(&mut ser)
            .map_err(|e| codec_error("msgpack encode", e))
    }
    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
        // Nesting depth is bounded by rmp-serde (1024); lengths are checked against the slice.
        rmp_serde::from_slice(bytes).map_err(|e| codec_error("msgpack decode", e))
    }
}

/// `postcard`: compact and fast, for plain structs (no `flatten`, untagged enums,
/// `skip_serializing_if` or `serde_json::Value`).
#[cfg(feature = "postcard")]
#[derive(Debug, Clone, Copy, Default)]
pub struct Postcard;

#[cfg(feature = "postcard")]
impl Codec for Postcard {
    const ID: u8 = 2;
    fn encode<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<()> {
        let taken = std::mem::take(out);
        *out = postcard::to_extend(value, taken).map_err(|e| codec_error("postcard encode", e))?;
        Ok(())
    }
    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
        let (value, rest) =
            postcard::take_from_bytes(bytes).map_err(|e| codec_error("postcard decode", e))?;
        if !rest.is_empty() {
            return Err(Error::new(
                ErrorKind::Codec,
                "postcard decode: trailing bytes",
            ));
        }
        Ok(value)
    }
}

/// `bincode` 2 through its serde API. Opt-in only: upstream is unmaintained
/// (3.0.0 is a `compile_error!` tombstone, RUSTSEC-2025-0141). Prefer [`Postcard`].
#[cfg(feature = "bincode")]
#[derive(Debug, Clone, Copy, Default)]
pub struct Bincode;

#[cfg(feature = "bincode")]
const BINCODE_LIMIT: usize = 64 * 1024 * 1024;

#[cfg(feature = "bincode")]
impl Codec for Bincode {
    const ID: u8 = 3;
    fn encode<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<()> {
        let config = bincode::config::standard();
        bincode::serde::encode_into_std_write(value, out, config)
            .map(|_| ())
            .map_err(|e| codec_error("bincode encode", e))
    }
    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
        // The limit bounds what a corrupt length prefix can make it allocate.
        let config = bincode::config::standard().with_limit::<BINCODE_LIMIT>();
        let (value, used) = bincode::serde::decode_from_slice(bytes, config)
            .map_err(|e| codec_error("bincode decode", e))?;
        if used != bytes.len() {
            return Err(Error::new(
                ErrorKind::Codec,
                "bincode decode: trailing bytes",
            ));
        }
        Ok(value)
    }
}

/// JSON (`serde_json`): readable with `redis-cli GET`, for debugging.
#[cfg(feature = "json")]
#[derive(Debug, Clone, Copy, Default)]
pub struct Json;

#[cfg(feature = "json")]
impl Codec for Json {
    const ID: u8 = 4;
    fn encode<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<()> {
        serde_json::to_writer(out, value).map_err(|e| codec_error("json encode", e))
    }
    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
        serde_json::from_slice(bytes).map_err(|e| codec_error("json decode", e))
    }
}

/// The codec a cache uses when a function does not choose one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CodecKind {
    /// [`MsgPack`], the default.
    #[default]
    MsgPack,
    /// [`Postcard`] (feature `postcard`).
    #[cfg(feature = "postcard")]
    Postcard,
    /// [`Bincode`] (feature `bincode`).
    #[cfg(feature = "bincode")]
    Bincode,
    /// [`Json`] (feature `json`).
    #[cfg(feature = "json")]
    Json,
}

/// Marker for "the cache's configured codec", used when a function names none.
#[derive(Debug, Clone, Copy, Default)]
pub struct CacheDefault;

/// How generated code reaches a codec: a fixed [`Codec`] type or the cache's default.
#[doc(hidden)]
pub trait SelectCodec: 'static {
    fn codec_id(kind: CodecKind) -> u8;
    /// [`encode_typed`] with the selected codec.
    fn encode_with<T: Serialize + DeserializeOwned>(
        kind: CodecKind,
        value: &T,
        out: &mut Vec<u8>,
    ) -> Result<u64>;
    /// [`Codec::encode`] with the selected codec (values that are only `Serialize`).
    fn encode_plain<T: Serialize + ?Sized>(
        kind: CodecKind,
        value: &T,
        out: &mut Vec<u8>,
    ) -> Result<()>;
    /// [`decode_typed`] with the selected codec.
    fn decode_with<T: DeserializeOwned>(
        kind: CodecKind,
        bytes: &[u8],
        fingerprint: u64,
    ) -> Result<T>;
}

impl<C: Codec> SelectCodec for C {
    fn codec_id(_: CodecKind) -> u8 {
        C::ID
    }
    fn encode_with<T: Serialize + DeserializeOwned>(
        _: CodecKind,
        value: &T,
        out: &mut Vec<u8>,
    ) -> Result<u64> {
        encode_typed::<C, T>(value, out)
    }
    fn encode_plain<T: Serialize + ?Sized>(
        _: CodecKind,
        value: &T,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        C::encode(value, out)
    }
    fn decode_with<T: DeserializeOwned>(_: CodecKind, bytes: &[u8], fingerprint: u64) -> Result<T> {
        decode_typed::<C, T>(bytes, fingerprint)
    }
}

macro_rules! dispatch {
    ($kind:expr, $codec:ident => $body:expr) => {
        match $kind {
            CodecKind::MsgPack => {
                type $codec = MsgPack;
                $body
            }
            #[cfg(feature = "postcard")]
            CodecKind::Postcard => {
                type $codec = Postcard;
                $body
            }
            #[cfg(feature = "bincode")]
            CodecKind::Bincode => {
                type $codec = Bincode;
                $body
            }
            #[cfg(feature = "json")]
            CodecKind::Json => {
                type $codec = Json;
                $body
            }
        }
    };
}

impl SelectCodec for CacheDefault {
    fn codec_id(kind: CodecKind) -> u8 {
        dispatch!(kind, C => <C as Codec>::ID)
    }
    fn encode_with<T: Serialize + DeserializeOwned>(
        kind: CodecKind,
        value: &T,
        out: &mut Vec<u8>,
    ) -> Result<u64> {
        dispatch!(kind, C => encode_typed::<C, T>(value, out))
    }
    fn encode_plain<T: Serialize + ?Sized>(
        kind: CodecKind,
        value: &T,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        dispatch!(kind, C => <C as Codec>::encode(value, out))
    }
    fn decode_with<T: DeserializeOwned>(
        kind: CodecKind,
        bytes: &[u8],
        fingerprint: u64,
    ) -> Result<T> {
        dispatch!(kind, C => decode_typed::<C, T>(bytes, fingerprint))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct V1 {
        id: u32,
        name: String,
    }

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct V2 {
        id: u32,
        name: String,
        #[serde(default)]
        email: Option<String>,
    }

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    #[serde(tag = "type")]
    enum Tagged {
        A { x: u32 },
        B { y: String },
    }

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    #[serde(untagged)]
    enum Untagged {
        N(u64),
        S(String),
    }

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Inner {
        a: u32,
    }

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Fancy {
        #[serde(skip_serializing_if = "Option::is_none", default)]
        maybe: Option<u32>,
        #[serde(flatten)]
        inner: Inner,
        tagged: Tagged,
        untagged: Vec<Untagged>,
        json: serde_json::Value,
    }

    fn round_trip<C: Codec, T: Serialize + DeserializeOwned>(v: &T) -> T {
        let mut buf = Vec::new();
        C::encode(v, &mut buf).unwrap();
        C::decode(&buf).unwrap()
    }

    #[test]
    fn msgpack_round_trips_every_serde_feature() {
        let v = Fancy {
            maybe: None,
            inner: Inner { a: 7 },
            tagged: Tagged::B { y: "y".into() },
            untagged: vec![Untagged::N(1), Untagged::S("s".into())],
            json: serde_json::json!({"k": [1, "two", null, {"x": 1.5}]}),
        };
        assert_eq!(round_trip::<MsgPack, _>(&v), v);
        let v = Fancy {
            maybe: Some(3),
            tagged: Tagged::A { x: 1 },
            ..v
        };
        assert_eq!(round_trip::<MsgPack, _>(&v), v);
    }

    #[test]
    fn msgpack_survives_an_added_default_field() {
        let mut buf = Vec::new();
        MsgPack::encode(
            &V1 {
                id: 1,
                name: "a".into(),
            },
            &mut buf,
        )
        .unwrap();
        let v2: V2 = MsgPack::decode(&buf).unwrap();
        assert_eq!(
            v2,
            V2 {
                id: 1,
                name: "a".into(),
                email: None
            }
        );
    }

    /// One type across "deploys": each module is a version of `User` (serde sees the same
    /// container name, as it would after a redeploy).
    mod deploys {
        use serde::{Deserialize, Serialize};

        #[derive(Serialize, Deserialize, PartialEq, Debug, Clone, Copy)]
        pub enum Role {
            Admin,
            Member,
        }
        pub mod v1 {
            #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
            pub struct User {
                pub id: u64,
                pub first: String,
                pub last: String,
                pub role: super::Role,
            }
        }
        pub mod added_default {
            #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
            pub struct User {
                pub id: u64,
                pub first: String,
                pub last: String,
                pub role: super::Role,
                #[serde(default)]
                pub nick: Option<String>,
            }
        }
        pub mod removed {
            #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
            pub struct User {
                pub id: u64,
                pub first: String,
                pub role: super::Role,
            }
        }
        pub mod reordered {
            #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
            pub struct User {
                pub id: u64,
                pub last: String,
                pub first: String,
                pub role: super::Role,
            }
        }
        pub mod renamed {
            #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
            pub struct User {
                pub id: u64,
                pub given: String,
                pub last: String,
                pub role: super::Role,
            }
        }
        pub mod variant_added {
            #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
            pub enum Role {
                Admin,
                Guest,
                Member,
            }
            #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
            pub struct User {
                pub id: u64,
                pub first: String,
                pub last: String,
                pub role: Role,
            }
        }
        pub mod retyped {
            #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
            pub struct User {
                pub id: i32,
                pub first: String,
                pub last: String,
                pub role: super::Role,
            }
        }
    }

    fn written_by_v1() -> (Vec<u8>, u64) {
        let users = vec![deploys::v1::User {
            id: 7,
            first: "Ada".into(),
            last: "Lovelace".into(),
            role: deploys::Role::Member,
        }];
        let mut buf = Vec::new();
        let fingerprint = encode_typed::<MsgPack, _>(&users, &mut buf).unwrap();
        (buf, fingerprint)
    }

    #[test]
    fn compact_values_are_positional_and_read_back_by_the_same_type() {
        let (buf, fingerprint) = written_by_v1();
        assert_ne!(fingerprint, 0, "a plain struct is stored compact");
        let mut named = Vec::new();
        MsgPack::encode(
            &decode_typed::<MsgPack, Vec<deploys::v1::User>>(&buf, fingerprint).unwrap(),
            &mut named,
        )
        .unwrap();
        assert!(
            buf.len() * 3 < named.len() * 2,
            "{} vs {} bytes",
            buf.len(),
            named.len()
        );
    }

    /// Every change to the type after a deploy makes the compact value a miss (an error
    /// here), never a value read into the wrong fields.
    #[test]
    fn every_change_to_the_type_is_a_miss_never_a_wrong_value() {
        let (buf, fp) = written_by_v1();
        assert!(decode_typed::<MsgPack, Vec<deploys::added_default::User>>(&buf, fp).is_err());
        assert!(decode_typed::<MsgPack, Vec<deploys::removed::User>>(&buf, fp).is_err());
        assert!(decode_typed::<MsgPack, Vec<deploys::reordered::User>>(&buf, fp).is_err());
        assert!(decode_typed::<MsgPack, Vec<deploys::renamed::User>>(&buf, fp).is_err());
        assert!(decode_typed::<MsgPack, Vec<deploys::variant_added::User>>(&buf, fp).is_err());
        // A retyped field either fails to decode or reads the very same value.
        if let Ok(users) = decode_typed::<MsgPack, Vec<deploys::retyped::User>>(&buf, fp) {
            assert_eq!((users[0].id, users[0].first.as_str()), (7, "Ada"));
        }
        // Without the check, positional reading does give wrong values: what it guards.
        let wrong: Vec<deploys::reordered::User> = rmp_serde::from_slice(&buf).unwrap();
        assert_eq!(wrong[0].first, "Lovelace");
    }

    #[test]
    fn self_describing_values_keep_field_names_and_serde_rules() {
        let mut buf = Vec::new();
        let fancy = Fancy {
            maybe: None,
            inner: Inner { a: 1 },
            tagged: Tagged::A { x: 2 },
            untagged: vec![Untagged::N(3), Untagged::S("s".into())],
            json: serde_json::json!({"k": [1, 2]}),
        };
        assert_eq!(
            encode_typed::<MsgPack, _>(&fancy, &mut buf).unwrap(),
            0,
            "named"
        );
        assert_eq!(decode_typed::<MsgPack, Fancy>(&buf, 0).unwrap(), fancy);
        // `skip_serializing_if`: named when a field is left out, compact when none is.
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Skippy {
            #[serde(skip_serializing_if = "Option::is_none", default)]
            a: Option<u32>,
            b: u32,
        }
        let mut buf = Vec::new();
        let skipped = Skippy { a: None, b: 5 };
        assert_eq!(encode_typed::<MsgPack, _>(&skipped, &mut buf).unwrap(), 0);
        assert_eq!(decode_typed::<MsgPack, Skippy>(&buf, 0).unwrap(), skipped);
        let mut buf = Vec::new();
        let full = Skippy { a: Some(1), b: 5 };
        let fingerprint = encode_typed::<MsgPack, _>(&full, &mut buf).unwrap();
        assert_ne!(fingerprint, 0);
        assert_eq!(
            decode_typed::<MsgPack, Skippy>(&buf, fingerprint).unwrap(),
            full
        );
        // A HashMap with several entries does not re-encode identically: named.
        let map: std::collections::HashMap<String, u32> =
            (0..20).map(|i| (i.to_string(), i)).collect();
        let mut buf = Vec::new();
        let fingerprint = encode_typed::<MsgPack, _>(&map, &mut buf).unwrap();
        assert_eq!(
            decode_typed::<MsgPack, std::collections::HashMap<String, u32>>(&buf, fingerprint)
                .unwrap(),
            map
        );
    }

    #[test]
    fn decoding_garbage_is_an_error_not_a_panic() {
        for bytes in [&b""[..], b"\xff\xff", b"\xdd\xff\xff\xff\xff", b"\x92\x01"] {
            assert!(MsgPack::decode::<V1>(bytes).is_err());
        }
    }

    #[cfg(feature = "postcard")]
    #[test]
    fn postcard_round_trips_plain_structs() {
        let v = V1 {
            id: 9,
            name: "n".into(),
        };
        assert_eq!(round_trip::<Postcard, _>(&v), v);
        assert!(Postcard::decode::<V1>(b"\x01").is_err());
    }

    #[cfg(feature = "bincode")]
    #[test]
    fn bincode_round_trips_plain_structs() {
        let v = V1 {
            id: 9,
            name: "n".into(),
        };
        assert_eq!(round_trip::<Bincode, _>(&v), v);
        // A length prefix claiming 2^60 bytes fails instead of allocating.
        assert!(Bincode::decode::<Vec<u8>>(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0x10]).is_err());
    }

    #[cfg(feature = "json")]
    #[test]
    fn json_round_trips_every_serde_feature() {
        let v = Fancy {
            maybe: Some(1),
            inner: Inner { a: 7 },
            tagged: Tagged::A { x: 1 },
            untagged: vec![Untagged::N(1)],
            json: serde_json::json!({"k": 1}),
        };
        assert_eq!(round_trip::<Json, _>(&v), v);
    }

    #[test]
    fn cache_default_dispatches_on_the_kind() {
        assert_eq!(
            <CacheDefault as SelectCodec>::codec_id(CodecKind::MsgPack),
            MsgPack::ID
        );
        let mut buf = Vec::new();
        let fingerprint = CacheDefault::encode_with(CodecKind::MsgPack, &5u32, &mut buf).unwrap();
        assert_eq!(
            <CacheDefault as SelectCodec>::decode_with::<u32>(
                CodecKind::MsgPack,
                &buf,
                fingerprint
            )
            .unwrap(),
            5
        );
    }
}
