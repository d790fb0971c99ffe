//! The entry point of the decoder fuzz target and property test (feature `fuzz`): bytes
//! found under a cache key, from any source, must never panic nor allocate without bound.

use crate::codec::Codec;
use crate::envelope;

/// Opens arbitrary bytes as a stored value and decodes its payload every way the cache
/// would: as query values with every compiled codec, and as an HTTP response. Returns how
/// many decodings succeeded.
pub fn decode_untrusted(bytes: &[u8]) -> usize {
    type Row = (
        u64,
        String,
        Option<Vec<u8>>,
        std::collections::BTreeMap<String, f64>,
        bool,
    );
    fn try_all<C: Codec>(payload: &[u8]) -> usize {
        usize::from(C::decode::<Vec<Row>>(payload).is_ok())
            + usize::from(C::decode::<String>(payload).is_ok())
            + usize::from(C::decode::<Option<Vec<u32>>>(payload).is_ok())
    }
    let Some(opened) = envelope::open_untrusted(bytes) else {
        return 0;
    };
    let payload = &opened.payload[..];
    #[cfg_attr(
        not(any(feature = "postcard", feature = "bincode", feature = "json")),
        allow(unused_mut)
    )]
    let mut ok = try_all::<crate::codec::MsgPack>(payload);
    #[cfg(feature = "postcard")]
    {
        ok += try_all::<crate::codec::Postcard>(payload);
    }
    #[cfg(feature = "bincode")]
    {
        ok += try_all::<crate::codec::Bincode>(payload);
    }
    #[cfg(feature = "json")]
    {
        ok += try_all::<crate::codec::Json>(payload);
    }
    #[cfg(feature = "view")]
    {
        ok += usize::from(crate::view::open_untrusted(&opened));
    }
    ok
}
