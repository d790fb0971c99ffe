//! Codec values in envelopes: how `#[cached_query]` results and `Cache::set` values are
//! read and written by the fill protocol.

use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::{CodecKind, SelectCodec};
use crate::envelope::{Header, Kind, Opened, Writer};
use crate::fill::Filler;
use crate::share::Sharing;

/// Appends the encoding of a value to a payload; returns its schema fingerprint (0: none).
type Encode<T> = fn(CodecKind, &T, &mut Vec<u8>) -> crate::Result<u64>;

/// How a query's values are read and written: the codec's payload in an envelope of kind
/// [`Kind::Value`]; only values `cacheable` picks out are stored.
pub(crate) struct Values<O, T, C> {
    codec: CodecKind,
    cacheable: fn(&O) -> Option<&T>,
    wrap: fn(T) -> O,
    /// `None` for a reader, which never stores.
    encode: Option<Encode<T>>,
    /// For a type that shares (`Clone`): decoded once per opened value.
    sharing: Option<Sharing<T>>,
    _codec: PhantomData<fn() -> C>,
}

impl<O, T: DeserializeOwned, C: SelectCodec> Values<O, T, C> {
    /// Values encoded with `C` (or, for [`crate::codec::CacheDefault`], the cache's
    /// `codec`); `cacheable` picks out what is stored, `wrap` makes a call's answer of it.
    pub(crate) fn new(codec: CodecKind, cacheable: fn(&O) -> Option<&T>, wrap: fn(T) -> O) -> Self
    where
        T: Serialize,
    {
        Values {
            codec,
            cacheable,
            wrap,
            encode: Some(C::encode_with::<T>),
            sharing: None,
            _codec: PhantomData,
        }
    }

    /// Decodes each opened value once when `sharing` says how to hand it out again.
    pub(crate) fn sharing(mut self, sharing: Option<Sharing<T>>) -> Self {
        self.sharing = sharing;
        self
    }
}

impl<T: DeserializeOwned, C: SelectCodec> Values<T, T, C> {
    /// Values that are only read (`Cache::get`).
    pub(crate) fn reader(codec: CodecKind) -> Self {
        Values {
            codec,
            cacheable: |v| Some(v),
            wrap: |v| v,
            encode: None,
            sharing: None,
            _codec: PhantomData,
        }
    }
}

impl<O, T, C> Filler for Values<O, T, C>
where
    T: DeserializeOwned,
    C: SelectCodec,
{
    type Out = O;
    type Answer = O;

    fn stamp(&self, header: &mut Header) {
        header.kind = Kind::Value;
        header.codec = C::codec_id(self.codec);
    }

    fn answer(&self, value: &Opened) -> Option<O> {
        if value.header.kind != Kind::Value || value.header.codec != C::codec_id(self.codec) {
            return None;
        }
        if let Some(sharing) = &self.sharing {
            if let Some(shared) = sharing.load(&value.decoded) {
                return Some((self.wrap)(shared));
            }
            let decoded: T =
                C::decode_with(self.codec, &value.payload, value.header.fingerprint).ok()?;
            sharing.keep(&value.decoded, &decoded);
            return Some((self.wrap)(decoded));
        }
        C::decode_with(self.codec, &value.payload, value.header.fingerprint)
            .ok()
            .map(self.wrap)
    }

    fn finish(&self, out: O, _header: &Header, writer: &mut Writer) -> (O, bool) {
        let (Some(value), Some(encode)) = ((self.cacheable)(&out), self.encode) else {
            return (out, false);
        };
        match encode(self.codec, value, writer.payload()) {
            Ok(fingerprint) => {
                writer.set_fingerprint(fingerprint);
                (out, true)
            }
            Err(e) => {
                tracing::warn!(error = %e, "cache: value not encodable; not stored");
                (out, false)
            }
        }
    }

    fn pass(&self, out: O) -> O {
        out
    }

    fn failed(&self, out: &O) -> bool {
        (self.cacheable)(out).is_none()
    }
}
