//! The tracing `Deserializer`: answers each request with a sample and records it in the tracer.

use serde::de::{
    self, value::U32Deserializer, DeserializeSeed, EnumAccess, MapAccess, SeqAccess, VariantAccess,
    Visitor,
};

use super::trace::{Body, Error, Fmt, Leaf, Mode, Tracer, BYTES_SAMPLES, STR_SAMPLES};

/// The tracing deserializer for one position.
pub(super) struct De<'t> {
    pub(super) t: &'t mut Tracer,
}

macro_rules! leaf {
    ($($method:ident $visit:ident $kind:ident $name:literal [$($sample:expr_2021),+];)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            self.t.step()?;
            let vid = std::any::type_name::<V>();
            let which = self.t.samples.get(&(vid, Leaf::$kind)).copied().unwrap_or(0);
            self.t.last_leaf = Some((vid, Leaf::$kind));
            self.t.ret = Some(Fmt::Prim($name));
            let samples = [$($sample),+];
            let value = samples[which.min(samples.len() - 1)];
            visitor.$visit(value)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for De<'_> {
    type Error = Error;

    leaf! {
        deserialize_bool visit_bool Bool "bool" [false, true];
        deserialize_i8 visit_i8 Int "i8" [0, 1];
        deserialize_i16 visit_i16 Int "i16" [0, 1];
        deserialize_i32 visit_i32 Int "i32" [0, 1];
        deserialize_i64 visit_i64 Int "i64" [0, 1];
        deserialize_i128 visit_i128 Int "i128" [0, 1];
        deserialize_u8 visit_u8 Int "u8" [0, 1];
        deserialize_u16 visit_u16 Int "u16" [0, 1];
        deserialize_u32 visit_u32 Int "u32" [0, 1];
        deserialize_u64 visit_u64 Int "u64" [0, 1];
        deserialize_u128 visit_u128 Int "u128" [0, 1];
        deserialize_f32 visit_f32 Float "f32" [0.0, 1.0];
        deserialize_f64 visit_f64 Float "f64" [0.0, 1.0];
        deserialize_char visit_char Char "char" ['a', '0'];
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let s = self.sample_str::<V>();
        visitor.visit_str(s)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let s = self.sample_str::<V>();
        visitor.visit_string(s.to_owned())
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let b = self.sample_bytes::<V>();
        visitor.visit_bytes(b)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let b = self.sample_bytes::<V>();
        visitor.visit_byte_buf(b.to_vec())
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.t.step()?;
        if self.t.cutting() {
            self.t.ret = Some(Fmt::Prim("cut"));
            return visitor.visit_none();
        }
        let t = self.t;
        let value = visitor.visit_some(De { t: &mut *t })?;
        let inner = t.take();
        t.ret = Some(Fmt::Opt(Box::new(inner)));
        Ok(value)
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.t.step()?;
        self.t.ret = Some(Fmt::Prim("unit"));
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        let (id, mode) = self.t.enter(std::any::type_name::<V>(), name, None)?;
        let value = visitor.visit_unit()?;
        self.t.leave(id, mode, 0, Some(Body::Unit));
        Ok(value)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        let t = self.t;
        let (id, mode) = t.enter(std::any::type_name::<V>(), name, None)?;
        let value = visitor.visit_newtype_struct(De { t: &mut *t })?;
        let inner = t.take();
        t.leave(id, mode, 0, Some(Body::Newtype(inner)));
        Ok(value)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.t.step()?;
        let len = usize::from(!self.t.cutting());
        let mut seq = Seq::new(&mut *self.t, len);
        let value = visitor.visit_seq(&mut seq)?;
        let elem = seq.fmts.pop().unwrap_or(Fmt::Prim("cut"));
        self.t.ret = Some(Fmt::Seq(Box::new(elem)));
        Ok(value)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        self.t.step()?;
        let mut seq = Seq::new(&mut *self.t, len);
        let value = visitor.visit_seq(&mut seq)?;
        let fmts = std::mem::take(&mut seq.fmts);
        self.t.ret = Some(Fmt::Tuple(fmts));
        Ok(value)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        let (id, mode) = self.t.enter(std::any::type_name::<V>(), name, None)?;
        let mut seq = Seq::new(&mut *self.t, len);
        let value = visitor.visit_seq(&mut seq)?;
        let fmts = std::mem::take(&mut seq.fmts);
        self.t.leave(id, mode, 0, Some(Body::Tuple(fmts)));
        Ok(value)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.t.step()?;
        let len = if self.t.cutting() { 0 } else { 2 };
        let mut seq = Seq::new(&mut *self.t, len);
        let value = visitor.visit_map(&mut seq)?;
        let mut fmts = std::mem::take(&mut seq.fmts).into_iter();
        let k = fmts.next().unwrap_or(Fmt::Prim("cut"));
        let v = fmts.next().unwrap_or(Fmt::Prim("cut"));
        self.t.ret = Some(Fmt::Map(Box::new(k), Box::new(v)));
        Ok(value)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let (id, mode) = self.t.enter(std::any::type_name::<V>(), name, None)?;
        let mut seq = Seq::new(&mut *self.t, fields.len());
        let value = visitor.visit_seq(&mut seq)?;
        let fmts = std::mem::take(&mut seq.fmts);
        let body = Body::Struct(fields.iter().copied().zip(fmts).collect());
        self.t.leave(id, mode, 0, Some(body));
        Ok(value)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        if variants.is_empty() {
            return Err(self.t.fatal("an enum has no variants"));
        }
        let t = self.t;
        let (id, mode) = t.enter(std::any::type_name::<V>(), name, Some(variants))?;
        let v = t.choose(id, &mode, variants.len())?;
        t.variant = None;
        let value = visitor.visit_enum(Enum { t: &mut *t, v })?;
        if let Mode::Cut = mode {
            t.cut_choices.pop();
        }
        let body = t.variant.take();
        t.leave(id, mode, v as usize, body);
        Ok(value)
    }

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
        Err(self
            .t
            .fatal("it describes itself at run time (deserialize_any: untagged or internally tagged enum, flatten, or a dynamic value)"))
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
        Err(self
            .t
            .fatal("it reads identifiers (deserialize_identifier: an adjacently tagged enum or a custom Deserialize)"))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.t.ret = Some(Fmt::Prim("ignored"));
        visitor.visit_unit()
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

impl De<'_> {
    fn sample_str<V>(self) -> &'static str {
        let vid = std::any::type_name::<V>();
        let which = self.t.samples.get(&(vid, Leaf::Str)).copied().unwrap_or(0);
        self.t.last_leaf = Some((vid, Leaf::Str));
        self.t.ret = Some(Fmt::Prim("str"));
        self.t.steps += 1;
        STR_SAMPLES[which.min(STR_SAMPLES.len() - 1)]
    }

    fn sample_bytes<V>(self) -> &'static [u8] {
        let vid = std::any::type_name::<V>();
        let which = self
            .t
            .samples
            .get(&(vid, Leaf::Bytes))
            .copied()
            .unwrap_or(0);
        self.t.last_leaf = Some((vid, Leaf::Bytes));
        self.t.ret = Some(Fmt::Prim("bytes"));
        self.t.steps += 1;
        BYTES_SAMPLES[which.min(BYTES_SAMPLES.len() - 1)]
    }
}

/// Elements of a sequence, tuple, struct or map (keys and values alternate).
struct Seq<'t> {
    t: &'t mut Tracer,
    left: usize,
    fmts: Vec<Fmt>,
}

impl<'t> Seq<'t> {
    fn new(t: &'t mut Tracer, len: usize) -> Self {
        Seq {
            t,
            left: len,
            fmts: Vec::with_capacity(len),
        }
    }

    fn next<'de, S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<Option<S::Value>, Error> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        self.t.ret = None;
        let value = seed.deserialize(De { t: &mut *self.t })?;
        let f = self.t.take();
        self.fmts.push(f);
        Ok(Some(value))
    }
}

impl<'de> SeqAccess<'de> for Seq<'_> {
    type Error = Error;
    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, Error> {
        self.next(seed)
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

impl<'de> MapAccess<'de> for Seq<'_> {
    type Error = Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        self.next(seed)
    }
    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, Error> {
        self.next(seed)?
            .ok_or_else(|| Error("map value requested past the end".into()))
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.left / 2)
    }
}

struct Enum<'t> {
    t: &'t mut Tracer,
    v: u32,
}

impl<'de, 't> EnumAccess<'de> for Enum<'t> {
    type Error = Error;
    type Variant = Variant<'t>;
    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Variant<'t>), Error> {
        let value = seed.deserialize(U32Deserializer::<Error>::new(self.v))?;
        Ok((value, Variant { t: self.t }))
    }
}

struct Variant<'t> {
    t: &'t mut Tracer,
}

impl<'de> VariantAccess<'de> for Variant<'_> {
    type Error = Error;
    fn unit_variant(self) -> Result<(), Error> {
        self.t.variant = Some(Body::Unit);
        Ok(())
    }
    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, Error> {
        self.t.ret = None;
        let value = seed.deserialize(De { t: &mut *self.t })?;
        let f = self.t.take();
        self.t.variant = Some(Body::Newtype(f));
        Ok(value)
    }
    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Error> {
        let mut seq = Seq::new(&mut *self.t, len);
        let value = visitor.visit_seq(&mut seq)?;
        let fmts = std::mem::take(&mut seq.fmts);
        self.t.variant = Some(Body::Tuple(fmts));
        Ok(value)
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let mut seq = Seq::new(&mut *self.t, fields.len());
        let value = visitor.visit_seq(&mut seq)?;
        let fmts = std::mem::take(&mut seq.fmts);
        self.t.variant = Some(Body::Struct(fields.iter().copied().zip(fmts).collect()));
        Ok(value)
    }
}
