//! The tracer's state and the passes over a type, and the canonical description it writes.

use std::collections::{HashMap, HashSet};
use std::fmt::{self, Write as _};

use serde::de;

/// Passes over the type before giving up (each explores one more enum variant or sample).
const MAX_PASSES: usize = 2048;
/// Deserializer calls over all passes before giving up.
const MAX_STEPS: usize = 2_000_000;
/// Longest description (shared sub-types are written once, so only huge types reach it).
const MAX_DESCRIPTION: usize = 1 << 20;

type Id = usize;

/// The shape at one position.
#[derive(Debug, Clone)]
pub(super) enum Fmt {
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
pub(super) enum Body {
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
pub(super) enum Leaf {
    Bool,
    Int,
    Float,
    Char,
    Str,
    Bytes,
}

pub(super) const STR_SAMPLES: &[&str] = &[
    "",
    "0",
    "1970-01-01T00:00:00Z",
    "00000000-0000-0000-0000-000000000000",
    "a",
    "127.0.0.1",
];
pub(super) const BYTES_SAMPLES: &[&[u8]] = &[&[], &[0; 16], &[0; 4], &[0; 8], &[0; 32]];

impl Leaf {
    pub(super) fn candidates(self) -> usize {
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
pub(super) struct Error(pub(super) String);

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
pub(super) struct Tracer {
    ids: HashMap<&'static str, Id>,
    defs: Vec<Def>,
    /// Containers being traced (recording).
    stack: Vec<Id>,
    /// Containers being completed without recording (inside a recursion): non-empty = cut mode.
    cut: Vec<Id>,
    /// Enum choices made in cut mode, innermost last.
    pub(super) cut_choices: Vec<(Id, u32)>,
    /// Enum choices that looped in cut mode.
    bad: HashSet<(Id, u32)>,
    /// Chosen sample per (consuming visitor, leaf kind).
    pub(super) samples: HashMap<(&'static str, Leaf), usize>,
    pub(super) last_leaf: Option<(&'static str, Leaf)>,
    blame: Option<Blame>,
    /// Shape returned by the last deserializer call.
    pub(super) ret: Option<Fmt>,
    /// Body of the last enum variant traced.
    pub(super) variant: Option<Body>,
    pub(super) steps: usize,
}

pub(super) enum Mode {
    Record,
    Cut,
}

/// Runs `pass` (one deserialization of the traced type against the tracer, `de::De`) until
/// every reachable definition is complete, then writes the description. The pass is handed in
/// so that this file does not import the deserializer, which imports it.
pub(super) fn trace(
    mut pass: impl FnMut(&mut Tracer) -> Result<(), Error>,
) -> Result<String, String> {
    let mut t = Tracer::default();
    let mut root = None;
    for _ in 0..MAX_PASSES {
        t.stack.clear();
        t.cut.clear();
        t.cut_choices.clear();
        t.blame = None;
        t.last_leaf = None;
        t.ret = None;
        match pass(&mut t) {
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
    pub(super) fn fatal(&mut self, reason: impl Into<String>) -> Error {
        let reason = reason.into();
        self.blame = Some(Blame::Fatal(reason.clone()));
        Error(reason)
    }

    pub(super) fn step(&mut self) -> Result<(), Error> {
        self.steps += 1;
        if self.steps > MAX_STEPS {
            return Err(self.fatal("the type is too large to trace"));
        }
        Ok(())
    }

    pub(super) fn cutting(&self) -> bool {
        !self.cut.is_empty()
    }

    /// Enters a container consumed by visitor type `vid`; decides whether to record it.
    pub(super) fn enter(
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

    pub(super) fn leave(&mut self, id: Id, mode: Mode, variant: usize, body: Option<Body>) {
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
    pub(super) fn choose(&mut self, id: Id, mode: &Mode, n: usize) -> Result<u32, Error> {
        if self.defs[id].bodies.len() != n {
            return Err(self.fatal("one visitor type reads enums of different sizes"));
        }
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

    pub(super) fn take(&mut self) -> Fmt {
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
