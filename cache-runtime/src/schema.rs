//! Schema fingerprints of compact values: what a positional payload was read as.
//!
//! A positional payload (MessagePack with structs as arrays) carries no field names: read
//! with a type whose fields were reordered since it was written, it would give a wrong value.
//! So the payload is decoded through [`decode`], which notes every container the type's
//! `Deserialize` asks for while reading it (each struct with its field names, each enum with
//! its variant names, each tuple struct with its length) and hashes them: the fingerprint.
//! The value records the fingerprint it was written with (computed by reading the fresh
//! payload back), and a read that arrives at another fingerprint is a miss. Any change to the
//! types a value holds (a field added, removed, reordered or renamed, a variant added) changes
//! the fingerprint of every value that holds them; a change to a field's type makes its
//! decoding fail (a miss too) or reads the same value (`u32` to `u64`).
//!
//! A type that deserializes through `deserialize_any` (untagged and internally tagged enums,
//! `#[serde(flatten)]`, `serde_json::Value`) reads part of the payload in ways that are not
//! noted: such a value is [`Shapes::opaque`], and is stored with field names instead.

use std::cell::RefCell;
use std::fmt;

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor,
};

/// The containers a decoding met.
#[derive(Debug, Default)]
pub(crate) struct Shapes {
    /// FNV-1a over each container's kind, name and items, first meeting only.
    hash: u64,
    /// Containers met so far, by the address of their name (static in every `Deserialize`).
    seen: Vec<usize>,
    /// `deserialize_any` or `deserialize_ignored_any` was used: not everything was noted.
    opaque: bool,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0100_0000_01b3;

impl Shapes {
    fn new() -> Shapes {
        Shapes {
            hash: FNV_OFFSET,
            ..Shapes::default()
        }
    }

    fn mix(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.hash = (self.hash ^ u64::from(b)).wrapping_mul(FNV_PRIME);
        }
        self.hash = (self.hash ^ 0xff).wrapping_mul(FNV_PRIME);
    }

    fn note(&mut self, kind: &str, name: &'static str, items: &'static [&'static str], len: usize) {
        let id = name.as_ptr() as usize ^ items.as_ptr() as usize;
        if self.seen.contains(&id) {
            return;
        }
        self.seen.push(id);
        self.mix(kind.as_bytes());
        self.mix(name.as_bytes());
        for item in items {
            self.mix(item.as_bytes());
        }
        self.mix(&len.to_le_bytes());
    }

    /// Whether some of the payload was read without being noted.
    pub(crate) fn opaque(&self) -> bool {
        self.opaque
    }

    /// The fingerprint (never 0, which means "none" in an envelope).
    pub(crate) fn fingerprint(&self) -> u64 {
        self.hash.max(1)
    }
}

/// Deserializes `T` from `deserializer`, noting the containers it meets.
pub(crate) fn decode<'de, T, D>(deserializer: D) -> Result<(T, Shapes), D::Error>
where
    T: de::Deserialize<'de>,
    D: Deserializer<'de>,
{
    let shapes = RefCell::new(Shapes::new());
    let value = T::deserialize(Noting {
        inner: deserializer,
        shapes: &shapes,
    })?;
    Ok((value, shapes.into_inner()))
}

/// A deserializer, a visitor, an access or a seed of the decoding, and where to note.
struct Noting<'s, X> {
    inner: X,
    shapes: &'s RefCell<Shapes>,
}

impl<'s, X> Noting<'s, X> {
    fn wrap<Y>(&self, inner: Y) -> Noting<'s, Y> {
        Noting {
            inner,
            shapes: self.shapes,
        }
    }
}

macro_rules! forward_deserialize {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {$(
        fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
            let visitor = self.wrap(visitor);
            self.inner.$method($($arg,)* visitor)
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Noting<'_, D> {
    type Error = D::Error;

    forward_deserialize! {
        deserialize_bool(); deserialize_i8(); deserialize_i16(); deserialize_i32();
        deserialize_i64(); deserialize_i128(); deserialize_u8(); deserialize_u16();
        deserialize_u32(); deserialize_u64(); deserialize_u128(); deserialize_f32();
        deserialize_f64(); deserialize_char(); deserialize_str(); deserialize_string();
        deserialize_bytes(); deserialize_byte_buf(); deserialize_option(); deserialize_unit();
        deserialize_seq(); deserialize_tuple(len: usize); deserialize_map();
        deserialize_identifier();
    }

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.shapes.borrow_mut().opaque = true;
        let visitor = self.wrap(visitor);
        self.inner.deserialize_any(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.shapes.borrow_mut().opaque = true;
        let visitor = self.wrap(visitor);
        self.inner.deserialize_ignored_any(visitor)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.shapes.borrow_mut().note("unit", name, &[], 0);
        let visitor = self.wrap(visitor);
        self.inner.deserialize_unit_struct(name, visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.shapes.borrow_mut().note("newtype", name, &[], 1);
        let visitor = self.wrap(visitor);
        self.inner.deserialize_newtype_struct(name, visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.shapes.borrow_mut().note("tuple", name, &[], len);
        let visitor = self.wrap(visitor);
        self.inner.deserialize_tuple_struct(name, len, visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.shapes.borrow_mut().note("struct", name, fields, 0);
        let visitor = self.wrap(visitor);
        self.inner.deserialize_struct(name, fields, visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.shapes.borrow_mut().note("enum", name, variants, 0);
        let visitor = self.wrap(visitor);
        self.inner.deserialize_enum(name, variants, visitor)
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

macro_rules! forward_visit {
    ($($method:ident($ty:ty);)*) => {$(
        fn $method<E: de::Error>(self, v: $ty) -> Result<V::Value, E> {
            self.inner.$method(v)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Noting<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(f)
    }

    forward_visit! {
        visit_bool(bool); visit_i8(i8); visit_i16(i16); visit_i32(i32); visit_i64(i64);
        visit_i128(i128); visit_u8(u8); visit_u16(u16); visit_u32(u32); visit_u64(u64);
        visit_u128(u128); visit_f32(f32); visit_f64(f64); visit_char(char);
        visit_str(&str); visit_borrowed_str(&'de str); visit_string(String);
        visit_bytes(&[u8]); visit_borrowed_bytes(&'de [u8]); visit_byte_buf(Vec<u8>);
    }

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_none()
    }
    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_unit()
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        let d = self.wrap(d);
        self.inner.visit_some(d)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        let d = self.wrap(d);
        self.inner.visit_newtype_struct(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        let seq = self.wrap(seq);
        self.inner.visit_seq(seq)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        let map = self.wrap(map);
        self.inner.visit_map(map)
    }
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        let data = self.wrap(data);
        self.inner.visit_enum(data)
    }
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Noting<'_, S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
        let d = self.wrap(d);
        self.inner.deserialize(d)
    }
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Noting<'_, A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        let seed = self.wrap(seed);
        self.inner.next_element_seed(seed)
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Noting<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let seed = self.wrap(seed);
        self.inner.next_key_seed(seed)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        let seed = self.wrap(seed);
        self.inner.next_value_seed(seed)
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'de, 's, A: EnumAccess<'de>> EnumAccess<'de> for Noting<'s, A> {
    type Error = A::Error;
    type Variant = Noting<'s, A::Variant>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self::Variant), A::Error> {
        let seed = self.wrap(seed);
        let shapes = self.shapes;
        let (value, variant) = self.inner.variant_seed(seed)?;
        Ok((
            value,
            Noting {
                inner: variant,
                shapes,
            },
        ))
    }
}

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for Noting<'_, A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.inner.unit_variant()
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        let seed = self.wrap(seed);
        self.inner.newtype_variant_seed(seed)
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        let visitor = self.wrap(visitor);
        self.inner.tuple_variant(len, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        // The variant's own name was noted with its enum; its fields are noted here.
        self.shapes
            .borrow_mut()
            .note("variant", fields.first().copied().unwrap_or(""), fields, 0);
        let visitor = self.wrap(visitor);
        self.inner.struct_variant(fields, visitor)
    }
}
