//! Value codecs: how a cached value becomes bytes.
//!
//! | codec        | feature    | id | round-trips                                   |
//! |--------------|------------|----|-----------------------------------------------|
//! | [`MsgPack`]  | (default)  | 1  | every serde feature: `flatten`, `skip_serializing_if`, tagged and untagged enums, `serde_json::Value`, fields added with `#[serde(default)]` |
//! | [`Postcard`] | `postcard` | 2  | plain structs and enums only (no self-describing features) |
//! | [`Bincode`]  | `bincode`  | 3  | like postcard; bincode is unmaintained upstream (RUSTSEC-2025-0141) |
//! | [`Json`]     | `json`     | 4  | like MessagePack, readable in `redis-cli`, larger and slower |
//!
//! A cache has one default ([`CodecKind`], set with
//! [`CacheBuilder::codec`](crate::CacheBuilder::codec)); a function can override it with
//! `#[cached_query(codec = postcard)]` or with its own type implementing [`Codec`].
//! Every value records its codec id, so a value written by another codec is a miss,
//! never a wrong decode.

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
    /// The id recorded in every value's envelope.
    const ID: u8;
    /// Appends the encoding of `value` to `out`.
    fn encode<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<()>;
    /// Decodes a whole buffer; any error makes the read a miss.
    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T>;
}

fn codec_error(what: &str, e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::with_source(ErrorKind::Codec, what.to_string(), e)
}

/// MessagePack with field names (`rmp-serde`): the default, because it round-trips every
/// serde feature and tolerates added `#[serde(default)]` fields across deploys.
#[derive(Debug, Clone, Copy, Default)]
pub struct MsgPack;

impl Codec for MsgPack {
    const ID: u8 = 1;
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
    fn encode_with<T: Serialize + ?Sized>(
        kind: CodecKind,
        value: &T,
        out: &mut Vec<u8>,
    ) -> Result<()>;
    fn decode_with<T: DeserializeOwned>(kind: CodecKind, bytes: &[u8]) -> Result<T>;
}

impl<C: Codec> SelectCodec for C {
    fn codec_id(_: CodecKind) -> u8 {
        C::ID
    }
    fn encode_with<T: Serialize + ?Sized>(
        _: CodecKind,
        value: &T,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        C::encode(value, out)
    }
    fn decode_with<T: DeserializeOwned>(_: CodecKind, bytes: &[u8]) -> Result<T> {
        C::decode(bytes)
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
    fn encode_with<T: Serialize + ?Sized>(
        kind: CodecKind,
        value: &T,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        dispatch!(kind, C => <C as Codec>::encode(value, out))
    }
    fn decode_with<T: DeserializeOwned>(kind: CodecKind, bytes: &[u8]) -> Result<T> {
        dispatch!(kind, C => <C as Codec>::decode(bytes))
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
        CacheDefault::encode_with(CodecKind::MsgPack, &5u32, &mut buf).unwrap();
        assert_eq!(
            <CacheDefault as SelectCodec>::decode_with::<u32>(CodecKind::MsgPack, &buf).unwrap(),
            5
        );
    }
}
