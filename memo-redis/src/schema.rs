//! Structural fingerprints of cached value types: what the bytes of a value look like.
//!
//! The attribute macro sees only the return type's tokens, not its definition, so a change inside
//! a type (a field's type, field order, a new enum variant, a `serde(rename)`) would keep the same
//! key while the bytes change meaning. Here the type's serde shape is traced at run time, once per
//! type: a [`Deserializer`](serde::Deserializer) that answers every request with a small sample
//! value and records what was requested (struct and field names, enum variants, primitive kinds,
//! options, sequences, maps, tuples), recursively. The record is written as a canonical text and
//! hashed with SHA-256, so the result is the same on every build and platform.
//!
//! - Enums are traced variant by variant: the type is deserialized again until every variant of
//!   every enum it reaches has been seen.
//! - Recursive types (`struct Node { next: Option<Box<Node>> }`) are cut where a container
//!   reappears inside itself: the description refers back to it, and the value is completed with
//!   empty options and sequences.
//! - Sample values that a type's `Deserialize` rejects (a `NonZeroU32` given 0, a date parsed from
//!   a string) are replaced by the next candidate and the trace is run again.
//! - Types that describe themselves at run time (`deserialize_any`: untagged or internally tagged
//!   enums, `flatten`, `serde_json::Value`) cannot be traced: [`describe`] reports
//!   [`Untraceable`], and callers fall back to the type's name.
//!
//! Traces are cached per type for the life of the process; the table is read without locks.

use std::collections::{HashMap, HashSet};
use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use serde::de::{
    self, value::U32Deserializer, DeserializeOwned, DeserializeSeed, EnumAccess, MapAccess,
    SeqAccess, VariantAccess, Visitor,
};
use sha2::{Digest, Sha256};

/// Why a type's shape could not be traced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the serde shape of `{type_name}` cannot be traced: {reason}")]
pub struct Untraceable {
    /// The type, as `std::any::type_name` spells it.
    pub type_name: &'static str,
    /// What stopped the trace.
    pub reason: String,
}

/// The canonical description of `T`'s serde shape (the text whose SHA-256 is its fingerprint).
///
/// # Errors
/// The type's `Deserialize` asks for a self-describing format (`deserialize_any`,
/// `deserialize_identifier`), panics, rejects every sample value, or is too large to trace.
///
/// ```
/// #[derive(serde::Deserialize)]
/// struct Score { user: u64, delta: i32 }
/// #[derive(serde::Deserialize)]
/// #[serde(untagged)]
/// enum Loose { A(u8), B(String) }
///
/// let d = memo_redis::schema::describe::<Score>().unwrap();
/// assert_eq!(d, "S5:Score.s{4:user:u64,5:delta:i32}");
/// assert!(memo_redis::schema::describe::<Loose>().is_err());
/// ```
pub fn describe<T: DeserializeOwned>() -> Result<String, Untraceable> {
    let type_name = std::any::type_name::<T>();
    let traced = std::panic::catch_unwind(trace::<T>).map_err(|_| Untraceable {
        type_name,
        reason: "its Deserialize implementation panicked".into(),
    })?;
    traced.map_err(|reason| Untraceable { type_name, reason })
}

/// The traced shape of one value type, as stored in the process-wide table (opaque; what
/// [`ShapeFn`]s return).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Traced {
    /// SHA-256 of the canonical description; `None` when the type could not be traced.
    pub(crate) digest: Option<[u8; 32]>,
    /// Why not, for the one-time warning.
    pub(crate) error: Option<String>,
    /// What envelopes carry to tell value types apart: the first 8 bytes of `digest`, or of a
    /// hash of the type's name when it could not be traced; never 0 (0 = "not checked").
    pub(crate) tag: u64,
}

/// A function returning the traced shape of one value type; the macro passes
/// `shape_fn::<Policy, Ret>` to the key builders.
pub type ShapeFn = fn() -> &'static Traced;

/// The traced shape of `T`, traced on first use and cached for the life of the process.
pub(crate) fn shape_of<T: DeserializeOwned>() -> &'static Traced {
    // The address of this instantiation identifies `T` (without needing `T: 'static`): two
    // instantiations folded into one address have identical code, so identical traces.
    let key = compute::<T> as fn() -> Traced as usize;
    table_get(key).unwrap_or_else(|| table_insert(key, compute::<T>))
}

/// A shape for no type in particular (never used by a program that compiles; see
/// `__private::ShapeOfFallback`).
pub(crate) fn untraced() -> &'static Traced {
    static UNTRACED: Traced = Traced {
        digest: None,
        error: None,
        tag: 1,
    };
    &UNTRACED
}

/// The envelope tag of `T` (see [`Traced::tag`]).
pub(crate) fn tag_of<T: DeserializeOwned>() -> u64 {
    shape_of::<T>().tag
}

fn compute<T: DeserializeOwned>() -> Traced {
    match describe::<T>() {
        Ok(text) => {
            let mut h = Sha256::new();
            h.update(b"memo-redis shape v1\n");
            h.update(text.as_bytes());
            let digest: [u8; 32] = h.finalize().into();
            Traced {
                digest: Some(digest),
                error: None,
                tag: tag_from(&digest),
            }
        }
        Err(e) => {
            let mut h = Sha256::new();
            h.update(b"memo-redis untraced type\n");
            h.update(e.type_name.as_bytes());
            let digest: [u8; 32] = h.finalize().into();
            Traced {
                digest: None,
                error: Some(e.reason),
                tag: tag_from(&digest),
            }
        }
    }
}

fn tag_from(digest: &[u8; 32]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(b).max(1)
}

// The process-wide table: open addressing over fixed slots, read with two atomic loads; writers
// (once per value type) take a mutex. Types beyond the slots go to a locked overflow list.
const SLOTS: usize = 256;
static KEYS: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];
static VALUES: [OnceLock<&'static Traced>; SLOTS] = [const { OnceLock::new() }; SLOTS];
static WRITER: Mutex<Vec<(usize, &'static Traced)>> = Mutex::new(Vec::new());

fn slot_of(key: usize) -> usize {
    (key >> 4) % SLOTS
}

fn table_get(key: usize) -> Option<&'static Traced> {
    let start = slot_of(key);
    for i in 0..SLOTS {
        let s = (start + i) % SLOTS;
        match KEYS[s].load(Ordering::Acquire) {
            0 => return None,
            k if k == key => return VALUES[s].get().copied(),
            _ => {}
        }
    }
    let overflow = WRITER.lock().unwrap_or_else(|p| p.into_inner());
    overflow.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

fn table_insert(key: usize, compute: fn() -> Traced) -> &'static Traced {
    let mut overflow = WRITER.lock().unwrap_or_else(|p| p.into_inner());
    let start = slot_of(key);
    for i in 0..SLOTS {
        let s = (start + i) % SLOTS;
        match KEYS[s].load(Ordering::Acquire) {
            k if k == key => {
                if let Some(v) = VALUES[s].get() {
                    return v;
                }
            }
            0 => {
                let v: &'static Traced = Box::leak(Box::new(compute()));
                let _ = VALUES[s].set(v);
                // Published after the value: a reader that sees the key finds the value.
                KEYS[s].store(key, Ordering::Release);
                return v;
            }
            _ => {}
        }
    }
    if let Some((_, v)) = overflow.iter().find(|(k, _)| *k == key) {
        return v;
    }
    let v: &'static Traced = Box::leak(Box::new(compute()));
    overflow.push((key, v));
    v
}

// ---------------------------------------------------------------------------------------------
// The tracer.

/// Passes over the type before giving up (each explores one more enum variant or sample).
const MAX_PASSES: usize = 2048;
/// Deserializer calls over all passes before giving up.
const MAX_STEPS: usize = 2_000_000;
/// Longest description (shared sub-types are written once, so only huge types reach it).
const MAX_DESCRIPTION: usize = 1 << 20;

type Id = usize;

/// The shape at one position.
#[derive(Debug, Clone)]
enum Fmt {
    Prim(&'static str),
    Opt(Box<Fmt>),
    Seq(Box<Fmt>),
    Map(Box<Fmt>, Box<Fmt>),
    Tuple(Vec<Fmt>),
    /// A named container (struct or enum), described once in `defs`.
    Ref(Id),
}

/// The content of a struct or of one enum variant.
#[derive(Debug, Clone)]
enum Body {
    Unit,
    Newtype(Fmt),
    Tuple(Vec<Fmt>),
    Struct(Vec<(&'static str, Fmt)>),
}

#[derive(Debug)]
struct Def {
    name: &'static str,
    /// `None` for a struct; the variant names for an enum.
    variants: Option<&'static [&'static str]>,
    /// The struct's body (one entry), or each variant's, once traced.
    bodies: Vec<Option<Body>>,
}

impl Def {
    fn incomplete(&self) -> bool {
        self.bodies.iter().any(Option::is_none)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Leaf {
    Bool,
    Int,
    Float,
    Char,
    Str,
    Bytes,
}

const STR_SAMPLES: &[&str] = &[
    "",
    "0",
    "1970-01-01T00:00:00Z",
    "00000000-0000-0000-0000-000000000000",
    "a",
    "127.0.0.1",
];
const BYTES_SAMPLES: &[&[u8]] = &[&[], &[0; 16], &[0; 4], &[0; 8], &[0; 32]];

impl Leaf {
    fn candidates(self) -> usize {
        match self {
            Leaf::Bool | Leaf::Int | Leaf::Float | Leaf::Char => 2,
            Leaf::Str => STR_SAMPLES.len(),
            Leaf::Bytes => BYTES_SAMPLES.len(),
        }
    }
}

/// What made a pass fail, when it was the tracer's doing.
#[derive(Debug)]
enum Blame {
    /// A container reappeared inside itself while completing a value: this enum choice
    /// (id, variant) must not be taken there again.
    Loop(Option<(Id, u32)>),
    /// Not traceable at all.
    Fatal(String),
}

#[derive(Debug)]
struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for Error {}
impl de::Error for Error {
    fn custom<M: fmt::Display>(msg: M) -> Self {
        Error(msg.to_string())
    }
}

#[derive(Default)]
struct Tracer {
    ids: HashMap<&'static str, Id>,
    defs: Vec<Def>,
    /// Containers being traced (recording).
    stack: Vec<Id>,
    /// Containers being completed without recording (inside a recursion): non-empty = cut mode.
    cut: Vec<Id>,
    /// Enum choices made in cut mode, innermost last.
    cut_choices: Vec<(Id, u32)>,
    /// Enum choices that looped in cut mode.
    bad: HashSet<(Id, u32)>,
    /// Chosen sample per (consuming visitor, leaf kind).
    samples: HashMap<(&'static str, Leaf), usize>,
    last_leaf: Option<(&'static str, Leaf)>,
    blame: Option<Blame>,
    /// Shape returned by the last deserializer call.
    ret: Option<Fmt>,
    /// Body of the last enum variant traced.
    variant: Option<Body>,
    steps: usize,
}

enum Mode {
    Record,
    Cut,
}

fn trace<T: DeserializeOwned>() -> Result<String, String> {
    let mut t = Tracer::default();
    let mut root = None;
    for _ in 0..MAX_PASSES {
        t.stack.clear();
        t.cut.clear();
        t.cut_choices.clear();
        t.blame = None;
        t.last_leaf = None;
        t.ret = None;
        match T::deserialize(De { t: &mut t }) {
            Ok(_) => {
                let fmt = t.ret.take().unwrap_or(Fmt::Prim("nothing"));
                root.get_or_insert(fmt);
                if !t.defs.iter().any(Def::incomplete) {
                    break;
                }
            }
            Err(e) => match t.blame.take() {
                Some(Blame::Fatal(reason)) => return Err(reason),
                Some(Blame::Loop(Some(choice))) => {
                    t.bad.insert(choice);
                }
                Some(Blame::Loop(None)) => {
                    return Err("a type contains itself with no way to end".into())
                }
                None => {
                    // The type rejected a sample value: try the next one for that leaf.
                    let Some(leaf) = t.last_leaf else {
                        return Err(format!("it rejected the traced value: {e}"));
                    };
                    let n = t.samples.entry(leaf).or_insert(0);
                    *n += 1;
                    if *n >= leaf.1.candidates() {
                        return Err(format!("it rejected every sample value: {e}"));
                    }
                }
            },
        }
        if t.steps > MAX_STEPS {
            return Err("the type is too large to trace".into());
        }
    }
    let (Some(root), false) = (root, t.defs.iter().any(Def::incomplete)) else {
        return Err("some enum variants could not be reached".into());
    };
    let mut w = Writer {
        defs: &t.defs,
        out: String::new(),
        seen: HashMap::new(),
    };
    w.fmt(&root)?;
    Ok(w.out)
}

impl Tracer {
    fn fatal(&mut self, reason: impl Into<String>) -> Error {
        let reason = reason.into();
        self.blame = Some(Blame::Fatal(reason.clone()));
        Error(reason)
    }

    fn step(&mut self) -> Result<(), Error> {
        self.steps += 1;
        if self.steps > MAX_STEPS {
            return Err(self.fatal("the type is too large to trace"));
        }
        Ok(())
    }

    fn cutting(&self) -> bool {
        !self.cut.is_empty()
    }

    /// Enters a container consumed by visitor type `vid`; decides whether to record it.
    fn enter(
        &mut self,
        vid: &'static str,
        name: &'static str,
        variants: Option<&'static [&'static str]>,
    ) -> Result<(Id, Mode), Error> {
        self.step()?;
        let id = match self.ids.get(vid) {
            Some(&id) => id,
            None => {
                let id = self.defs.len();
                self.ids.insert(vid, id);
                self.defs.push(Def {
                    name,
                    variants,
                    bodies: vec![None; variants.map_or(1, <[_]>::len)],
                });
                id
            }
        };
        if self.cutting() {
            if self.cut.contains(&id) {
                let blame = self.cut_choices.last().copied();
                self.blame = Some(Blame::Loop(blame));
                return Err(Error("loop".into()));
            }
            self.cut.push(id);
            return Ok((id, Mode::Cut));
        }
        let done = !self.defs.iter().any(Def::incomplete);
        if self.stack.contains(&id) || done {
            self.cut.push(id);
            return Ok((id, Mode::Cut));
        }
        self.stack.push(id);
        Ok((id, Mode::Record))
    }

    fn leave(&mut self, id: Id, mode: Mode, variant: usize, body: Option<Body>) {
        match mode {
            Mode::Cut => {
                self.cut.pop();
            }
            Mode::Record => {
                self.stack.pop();
                if let (Some(slot), Some(body)) = (self.defs[id].bodies.get_mut(variant), body) {
                    slot.get_or_insert(body);
                }
            }
        }
        self.ret = Some(Fmt::Ref(id));
    }

    /// The variant an enum takes this time.
    fn choose(&mut self, id: Id, mode: &Mode, n: usize) -> Result<u32, Error> {
        let pick = match mode {
            Mode::Cut => (0..n).find(|&v| !self.bad.contains(&(id, v as u32))),
            Mode::Record => {
                let bodies = &self.defs[id].bodies;
                bodies.iter().position(Option::is_none).or_else(|| {
                    (0..n)
                        .find(|&v| {
                            bodies[v]
                                .as_ref()
                                .is_some_and(|b| self.body_reaches_incomplete(b))
                        })
                        .or(Some(0))
                })
            }
        };
        let Some(v) = pick else {
            return Err(self.fatal("every variant of an enum contains the enum itself"));
        };
        let v = u32::try_from(v).map_err(|_| self.fatal("too many variants"))?;
        if let Mode::Cut = mode {
            self.cut_choices.push((id, v));
        }
        Ok(v)
    }

    fn body_reaches_incomplete(&self, body: &Body) -> bool {
        let mut seen = HashSet::new();
        self.body_reaches(body, &mut seen)
    }

    fn body_reaches(&self, body: &Body, seen: &mut HashSet<Id>) -> bool {
        match body {
            Body::Unit => false,
            Body::Newtype(f) => self.fmt_reaches(f, seen),
            Body::Tuple(fs) => fs.iter().any(|f| self.fmt_reaches(f, seen)),
            Body::Struct(fs) => fs.iter().any(|(_, f)| self.fmt_reaches(f, seen)),
        }
    }

    fn fmt_reaches(&self, f: &Fmt, seen: &mut HashSet<Id>) -> bool {
        match f {
            Fmt::Prim(_) => false,
            Fmt::Opt(f) | Fmt::Seq(f) => self.fmt_reaches(f, seen),
            Fmt::Map(k, v) => self.fmt_reaches(k, seen) || self.fmt_reaches(v, seen),
            Fmt::Tuple(fs) => fs.iter().any(|f| self.fmt_reaches(f, seen)),
            Fmt::Ref(id) => {
                if !seen.insert(*id) {
                    return false;
                }
                let def = &self.defs[*id];
                def.incomplete()
                    || def
                        .bodies
                        .iter()
                        .flatten()
                        .any(|b| self.body_reaches(b, seen))
            }
        }
    }

    fn take(&mut self) -> Fmt {
        self.ret.take().unwrap_or(Fmt::Prim("nothing"))
    }
}

/// Writes the canonical description: shared containers are written once and then referred to by
/// their order of first appearance (`#k`), which also closes recursive types.
struct Writer<'a> {
    defs: &'a [Def],
    out: String,
    seen: HashMap<Id, usize>,
}

impl Writer<'_> {
    fn text(&mut self, s: &str) {
        let _ = write!(self.out, "{}:{s}", s.len());
    }

    fn fmt(&mut self, f: &Fmt) -> Result<(), String> {
        if self.out.len() > MAX_DESCRIPTION {
            return Err("the type is too large to describe".into());
        }
        match f {
            Fmt::Prim(p) => self.out.push_str(p),
            Fmt::Opt(f) => {
                self.out.push('?');
                self.fmt(f)?;
            }
            Fmt::Seq(f) => {
                self.out.push('[');
                self.fmt(f)?;
                self.out.push(']');
            }
            Fmt::Map(k, v) => {
                self.out.push('{');
                self.fmt(k)?;
                self.out.push_str("=>");
                self.fmt(v)?;
                self.out.push('}');
            }
            Fmt::Tuple(fs) => {
                self.out.push('(');
                self.list(fs.iter().map(|f| (None, f)))?;
                self.out.push(')');
            }
            Fmt::Ref(id) => {
                if let Some(k) = self.seen.get(id) {
                    let _ = write!(self.out, "#{k}");
                    return Ok(());
                }
                self.seen.insert(*id, self.seen.len());
                let defs = self.defs;
                let def = &defs[*id];
                match def.variants {
                    None => {
                        self.out.push('S');
                        self.text(def.name);
                        self.out.push('.');
                        self.body(def.bodies.first().and_then(Option::as_ref))?;
                    }
                    Some(names) => {
                        self.out.push('E');
                        self.text(def.name);
                        self.out.push('<');
                        for (i, (name, body)) in names.iter().zip(&def.bodies).enumerate() {
                            if i > 0 {
                                self.out.push('|');
                            }
                            self.text(name);
                            self.body(body.as_ref())?;
                        }
                        self.out.push('>');
                    }
                }
            }
        }
        Ok(())
    }

    fn body(&mut self, body: Option<&Body>) -> Result<(), String> {
        match body {
            None => return Err("a container was not traced".into()),
            Some(Body::Unit) => self.out.push('u'),
            Some(Body::Newtype(f)) => {
                self.out.push_str("n(");
                self.fmt(f)?;
                self.out.push(')');
            }
            Some(Body::Tuple(fs)) => {
                self.out.push_str("t(");
                self.list(fs.iter().map(|f| (None, f)))?;
                self.out.push(')');
            }
            Some(Body::Struct(fs)) => {
                self.out.push_str("s{");
                self.list(fs.iter().map(|(n, f)| (Some(*n), f)))?;
                self.out.push('}');
            }
        }
        Ok(())
    }

    fn list<'f>(
        &mut self,
        items: impl Iterator<Item = (Option<&'f str>, &'f Fmt)>,
    ) -> Result<(), String> {
        for (i, (name, f)) in items.enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            if let Some(name) = name {
                self.text(name);
                self.out.push(':');
            }
            self.fmt(f)?;
        }
        Ok(())
    }
}

/// The tracing deserializer for one position.
struct De<'t> {
    t: &'t mut Tracer,
}

macro_rules! leaf {
    ($($method:ident $visit:ident $kind:ident $name:literal [$($sample:expr),+];)*) => {$(
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::num::NonZeroU32;

    use serde::Deserialize;

    use super::*;

    #[allow(dead_code)]
    mod v1 {
        #[derive(serde::Deserialize)]
        pub struct Score {
            pub user: u64,
            pub delta: i32,
            pub label: String,
        }
    }
    #[allow(dead_code)]
    mod v2 {
        #[derive(serde::Deserialize)]
        pub struct Score {
            pub user: u64,
            pub delta: u32,
            pub label: String,
        }
    }

    #[derive(Deserialize)]
    struct Ab {
        a: u32,
        b: u32,
    }
    #[derive(Deserialize)]
    struct Ba {
        b: u32,
        a: u32,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    enum Kind {
        A,
        B(u8),
        C { x: Option<String> },
        D(u8, Vec<Kind>),
    }

    /// The recursive variant comes first: completing a value must pick another.
    #[derive(Deserialize)]
    #[allow(dead_code)]
    enum Expr {
        Add(Box<Expr>, Box<Expr>),
        Neg(Box<Expr>),
        Lit(i64),
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Node {
        value: u32,
        next: Option<Box<Node>>,
        children: Vec<Node>,
        by_name: BTreeMap<String, Node>,
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Checked {
        n: NonZeroU32,
        #[serde(deserialize_with = "parse_date")]
        when: String,
    }

    fn parse_date<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        let s = String::deserialize(d)?;
        if s.len() == 20 && s.ends_with('Z') {
            Ok(s)
        } else {
            Err(serde::de::Error::custom("not a date"))
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    #[allow(dead_code)]
    enum Untagged {
        A(u8),
        B(String),
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Flat {
        #[serde(flatten)]
        inner: Ab,
    }

    #[derive(Deserialize)]
    #[serde(tag = "t")]
    #[allow(dead_code)]
    enum Internally {
        A { x: u8 },
    }

    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Renamed {
        #[serde(rename = "b")]
        a: u32,
        #[serde(skip)]
        cache: u64,
    }

    #[test]
    fn primitives_and_containers() {
        assert_eq!(describe::<u32>().unwrap(), "u32");
        assert_eq!(
            describe::<Option<Vec<(u8, String)>>>().unwrap(),
            "?[(u8,str)]"
        );
        assert_eq!(
            describe::<BTreeMap<String, Option<bool>>>().unwrap(),
            "{str=>?bool}"
        );
        assert_eq!(
            describe::<Box<str>>().unwrap(),
            describe::<String>().unwrap()
        );
        assert_eq!(describe::<[u16; 2]>().unwrap(), "(u16,u16)");
    }

    #[test]
    fn a_field_type_change_or_reorder_changes_the_description() {
        assert_ne!(describe::<v1::Score>(), describe::<v2::Score>());
        assert_eq!(
            describe::<v1::Score>().unwrap(),
            "S5:Score.s{4:user:u64,5:delta:i32,5:label:str}"
        );
        assert_ne!(describe::<Ab>(), describe::<Ba>());
        assert_eq!(describe::<Renamed>().unwrap(), "S7:Renamed.s{1:b:u32}");
    }

    #[test]
    fn every_enum_variant_is_described() {
        assert_eq!(
            describe::<Kind>().unwrap(),
            "E4:Kind<1:Au|1:Bn(u8)|1:Cs{1:x:?str}|1:Dt(u8,[#0])>"
        );
        assert_eq!(
            describe::<Expr>().unwrap(),
            "E4:Expr<3:Addt(#0,#0)|3:Negn(#0)|3:Litn(i64)>"
        );
    }

    #[test]
    fn recursive_types_refer_back() {
        assert_eq!(
            describe::<Node>().unwrap(),
            "S4:Node.s{5:value:u32,4:next:?#0,8:children:[#0],7:by_name:{str=>#0}}"
        );
    }

    #[test]
    fn rejected_samples_are_replaced() {
        assert_eq!(
            describe::<Checked>().unwrap(),
            "S7:Checked.s{1:n:u32,4:when:str}"
        );
    }

    #[test]
    fn self_describing_types_are_untraceable() {
        assert!(describe::<Untagged>().is_err());
        assert!(describe::<Flat>().is_err());
        assert!(describe::<Internally>().is_err());
        let e = describe::<Untagged>().unwrap_err();
        assert!(e.type_name.ends_with("Untagged"), "{e}");
    }

    #[test]
    fn shapes_are_cached_and_tagged() {
        let a = shape_of::<v1::Score>();
        assert!(std::ptr::eq(a, shape_of::<v1::Score>()));
        assert_ne!(a.tag, shape_of::<v2::Score>().tag);
        assert!(a.digest.is_some());
        let u = shape_of::<Untagged>();
        assert!(u.digest.is_none() && u.error.is_some() && u.tag != 0);
    }
}
