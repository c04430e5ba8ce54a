//! A configuration document read once: serde_json parses the bytes into a [`Tree`] (members in
//! document order, every member name once at every depth), and typed structs are then read
//! from the tree by [`from_tree`] — one deserializer per derived type instead of a second pass
//! over the bytes.
//!
//! Why a tree of our own and not `serde_json::Value`: serde_json's `Map` keeps members sorted
//! by name, so a walk over it would report a document's errors in another order than a read
//! of its bytes; and typed errors of this deserializer carry the JSON path of the value, so
//! no byte position is needed to name the field. Its error type formats serde's
//! `Unexpected` itself, which leaves serde's float `Display` (core's Grisu/Dragon formatting,
//! ≈16 KB of wasm that V8 compiles at every Envoy start) out of the filter: every float this
//! module prints goes through serde_json's `Number`.
//!
//! The path an error names is the one the byte reader named before (`config.rs`'s `path_at`
//! over serde_json's error position), rule for rule — see [`Place`]; the differential test in
//! `config.rs` holds the two readers to the same field and message over the fuzz corpus, the
//! vectors and generated documents.

use super::DUPLICATE;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Unexpected, Visitor};
use serde::Deserialize;
use std::fmt;

/// One JSON value, objects with their members in document order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tree {
    Null,
    Bool(bool),
    U64(u64),
    I64(i64),
    F64(f64),
    Str(String),
    Array(Vec<Tree>),
    Object(Vec<(String, Tree)>),
}

impl<'de> Deserialize<'de> for Tree {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Tree;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Tree, E> {
                Ok(Tree::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Tree, E> {
                // serde_json reads a non-negative integer as u64; kept that way for the typed pass.
                Ok(u64::try_from(v).map_or(Tree::I64(v), Tree::U64))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Tree, E> {
                Ok(Tree::U64(v))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Tree, E> {
                Ok(Tree::F64(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Tree, E> {
                Ok(Tree::Str(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<Tree, E> {
                Ok(Tree::Str(v))
            }
            fn visit_unit<E>(self) -> Result<Tree, E> {
                Ok(Tree::Null)
            }
            fn visit_none<E>(self) -> Result<Tree, E> {
                Ok(Tree::Null)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Tree, A::Error> {
                let mut items = Vec::new();
                while let Some(v) = a.next_element()? {
                    items.push(v);
                }
                Ok(Tree::Array(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Tree, A::Error> {
                let mut members = Vec::new();
                // The names seen, in serde_json's `Map` (a B-tree of `String` to `Value` that
                // every build links already; a set of its own would add a B-tree instance).
                let mut names = serde_json::Map::new();
                while let Some(k) = a.next_key::<String>()? {
                    if names.insert(k.clone(), serde_json::Value::Null).is_some() {
                        return Err(de::Error::custom(DUPLICATE));
                    }
                    let v: Tree = a.next_value()?;
                    members.push((k, v));
                }
                Ok(Tree::Object(members))
            }
        }
        d.deserialize_any(V)
    }
}

impl Tree {
    fn unexpected(&self) -> Unexpected<'_> {
        match self {
            Self::Null => Unexpected::Unit,
            Self::Bool(b) => Unexpected::Bool(*b),
            Self::U64(n) => Unexpected::Unsigned(*n),
            Self::I64(n) => Unexpected::Signed(*n),
            Self::F64(n) => Unexpected::Float(*n),
            Self::Str(s) => Unexpected::Str(s),
            Self::Array(_) => Unexpected::Seq,
            Self::Object(_) => Unexpected::Map,
        }
    }
}

/// A typed error of [`from_tree`]: the message (serde's wording, as serde_json gives it) and,
/// once known, the JSON path it belongs to.
///
/// Boxed, as serde_json's error is: a `Result` of one pointer keeps every derived visitor's
/// error paths small (a 24-byte-plus error made them ≈40 % larger in the filter's wasm).
#[derive(Debug)]
pub(crate) struct Error(Box<Inner>);

#[derive(Debug)]
pub(crate) struct Inner {
    pub message: String,
    pub path: Option<String>,
}

impl Error {
    /// The message and the path (if one was found).
    pub(crate) fn into_parts(self) -> (String, Option<String>) {
        let Inner { message, path } = *self.0;
        (message, path)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.message)
    }
}

impl std::error::Error for Error {}

/// serde's `Unexpected` in serde_json's words (`null`, floats through serde_json's `Number`),
/// without serde's own `Display` (whose float arm links core's float formatting).
struct Shown<'a>(Unexpected<'a>);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Unexpected::Bool(b) => write!(f, "boolean `{b}`"),
            Unexpected::Unsigned(i) => write!(f, "integer `{i}`"),
            Unexpected::Signed(i) => write!(f, "integer `{i}`"),
            Unexpected::Float(v) => match serde_json::Number::from_f64(v) {
                Some(n) => write!(f, "floating point `{n}`"),
                None => f.write_str("floating point"),
            },
            Unexpected::Char(c) => write!(f, "character `{c}`"),
            Unexpected::Str(s) => write!(f, "string {s:?}"),
            Unexpected::Bytes(_) => f.write_str("byte array"),
            Unexpected::Unit => f.write_str("null"),
            Unexpected::Option => f.write_str("Option value"),
            Unexpected::NewtypeStruct => f.write_str("newtype struct"),
            Unexpected::Seq => f.write_str("sequence"),
            Unexpected::Map => f.write_str("map"),
            Unexpected::Enum => f.write_str("enum"),
            Unexpected::UnitVariant => f.write_str("unit variant"),
            Unexpected::NewtypeVariant => f.write_str("newtype variant"),
            Unexpected::TupleVariant => f.write_str("tuple variant"),
            Unexpected::StructVariant => f.write_str("struct variant"),
            Unexpected::Other(other) => f.write_str(other),
        }
    }
}

/// `invalid type: …, expected …` in serde_json's words, as a custom error of any deserializer
/// (for visitors that must not reach serde's `Unexpected` `Display`).
pub(crate) fn invalid_type<E: de::Error>(unexp: Unexpected<'_>, exp: &dyn de::Expected) -> E {
    E::custom(format_args!(
        "invalid type: {}, expected {}",
        Shown(unexp),
        exp
    ))
}

impl de::Error for Error {
    #[cold]
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self(Box::new(Inner {
            message: msg.to_string(),
            path: None,
        }))
    }

    #[cold]
    fn invalid_type(unexp: Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        invalid_type(unexp, exp)
    }

    #[cold]
    fn invalid_value(unexp: Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        Self::custom(format_args!(
            "invalid value: {}, expected {}",
            Shown(unexp),
            exp
        ))
    }
}

/// Where a value sits: the chain of member names and indices from the document's root.
#[derive(Clone, Copy)]
enum Place<'a> {
    Root,
    Member(&'a Place<'a>, &'a str),
    Index(&'a Place<'a>, usize),
}

impl Place<'_> {
    fn render(&self, out: &mut String) {
        match self {
            Place::Root => {}
            Place::Member(parent, name) => {
                parent.render(out);
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(name);
            }
            Place::Index(parent, i) => {
                parent.render(out);
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
        }
    }

    fn path(&self) -> String {
        let mut out = String::new();
        self.render(&mut out);
        out
    }
}

fn placed(mut e: Error, at: impl FnOnce(&Error) -> String) -> Error {
    if e.0.path.is_none() {
        e.0.path = Some(at(&e));
    }
    e
}

/// Reads `T` from `tree`.
///
/// # Errors
/// [`Error`] with serde's message and the path of the offending value.
pub(crate) fn from_tree<T: serde::de::DeserializeOwned>(tree: &Tree) -> Result<T, Error> {
    T::deserialize(At {
        tree,
        place: Place::Root,
    })
}

/// The deserializer of one value of the tree.
struct At<'a, 'p> {
    tree: &'a Tree,
    place: Place<'p>,
}

impl<'a, 'p> At<'a, 'p> {
    /// serde_json's `invalid type` for a value of another kind than asked for: it stops before
    /// an array or object (so names the member that holds it) and after a scalar (naming it).
    fn mismatch(&self, exp: &dyn de::Expected) -> Error {
        let mut e: Error = de::Error::invalid_type(self.tree.unexpected(), exp);
        e.0.path = Some(self.place.path());
        e
    }

    fn scalar<R>(&self, r: Result<R, Error>) -> Result<R, Error> {
        r.map_err(|e| scalar_error(e, &self.place))
    }

    fn any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.tree {
            Tree::Null => self.scalar(visitor.visit_unit()),
            Tree::Bool(b) => self.scalar(visitor.visit_bool(*b)),
            Tree::U64(n) => self.scalar(visitor.visit_u64(*n)),
            Tree::I64(n) => self.scalar(visitor.visit_i64(*n)),
            Tree::F64(n) => self.scalar(visitor.visit_f64(*n)),
            Tree::Str(s) => self.scalar(visitor.visit_borrowed_str(s)),
            Tree::Array(items) => self.seq(items, visitor),
            Tree::Object(members) => self.map(members, visitor),
        }
    }

    fn seq<V: Visitor<'a>>(&self, items: &'a [Tree], visitor: V) -> Result<V::Value, Error> {
        let mut access = Items {
            items,
            next: 0,
            place: &self.place,
        };
        let r = visitor.visit_seq(&mut access);
        let next = access.next;
        r.map_err(|e| seq_error(e, &self.place, next, items.len()))
    }

    fn map<V: Visitor<'a>>(
        &self,
        members: &'a [(String, Tree)],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let mut access = Members {
            members,
            next: 0,
            value_read: false,
            place: &self.place,
        };
        let r = visitor.visit_map(&mut access);
        let (next, value_read) = (access.next, access.value_read);
        r.map_err(|e| map_error(e, &self.place, members, next, value_read))
    }
}

/// The path of an error a scalar's visitor returned: serde_json stops after the scalar.
#[inline(never)]
fn scalar_error(e: Error, place: &Place<'_>) -> Error {
    placed(e, |_| place.path())
}

/// The path of an error an array's visitor returned without one: serde_json stops after the
/// array's `]` when every element was read or the error came from the last one (the array's
/// own path), else after the `,` that follows the last element read (the next element's).
#[inline(never)]
fn seq_error(e: Error, place: &Place<'_>, next: usize, len: usize) -> Error {
    placed(e, |_| {
        if next >= len {
            place.path()
        } else {
            Place::Index(place, next).path()
        }
    })
}

/// The path of an error an object's visitor returned without one (`next` member names read,
/// the last one's value read or not), as serde_json's position named it.
#[inline(never)]
fn map_error(
    e: Error,
    place: &Place<'_>,
    members: &[(String, Tree)],
    next: usize,
    value_read: bool,
) -> Error {
    placed(e, |e| {
        let last = next.checked_sub(1).and_then(|i| members.get(i));
        // After the object's `}` (everything read, or the last member's value): serde_json's
        // position names the last member, except for `missing field`.
        let closed = next >= members.len() && (value_read || members.is_empty());
        let missing = e.0.message.starts_with("missing field");
        match last {
            Some((name, child)) if !(closed && missing) => {
                let member = Place::Member(place, name);
                // Before the `,` after a member's value: when that value is an object,
                // serde_json's position follows its `}` and so names that object's last member.
                match child {
                    Tree::Object(inner) if !closed && value_read && !missing => {
                        match inner.last() {
                            Some((last, _)) => Place::Member(&member, last).path(),
                            None => member.path(),
                        }
                    }
                    _ => member.path(),
                }
            }
            _ => place.path(),
        }
    })
}

struct Items<'a, 'p, 'q> {
    items: &'a [Tree],
    next: usize,
    place: &'q Place<'p>,
}

impl<'a, 'p, 'q> Items<'a, 'p, 'q> {
    /// The next element's deserializer (not generic: one copy for every element type).
    #[inline(never)]
    fn next_at(&mut self) -> Option<At<'a, 'q>> {
        let tree = self.items.get(self.next)?;
        let i = self.next;
        self.next += 1;
        Some(At {
            tree,
            place: Place::Index(self.place, i),
        })
    }
}

impl<'a> SeqAccess<'a> for &mut Items<'a, '_, '_> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'a>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        match self.next_at() {
            Some(at) => seed.deserialize(at).map(Some),
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len().saturating_sub(self.next))
    }
}

struct Members<'a, 'p, 'q> {
    members: &'a [(String, Tree)],
    /// Members whose name was read.
    next: usize,
    /// Whether the value of member `next - 1` was read (or its reading begun).
    value_read: bool,
    place: &'q Place<'p>,
}

impl<'a: 'q, 'p, 'q> Members<'a, 'p, 'q> {
    /// The next member's name (not generic: one copy for every visitor).
    #[inline(never)]
    fn next_name(&mut self) -> Option<&'a str> {
        let (name, _) = self.members.get(self.next)?;
        self.next += 1;
        self.value_read = false;
        Some(name)
    }

    /// The deserializer of the value of the member whose name was read last.
    #[inline(never)]
    fn value_at(&mut self) -> Result<At<'a, 'q>, Error> {
        let Some((name, tree)) = self.next.checked_sub(1).and_then(|i| self.members.get(i)) else {
            return Err(de::Error::custom("a value before its member name"));
        };
        self.value_read = true;
        Ok(At {
            tree,
            place: Place::Member(self.place, name),
        })
    }
}

impl<'a: 'q, 'q> MapAccess<'a> for &mut Members<'a, '_, 'q> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'a>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        match self.next_name() {
            Some(name) => seed.deserialize(Name(name)).map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'a>>(&mut self, seed: V) -> Result<V::Value, Error> {
        seed.deserialize(self.value_at()?)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.members.len().saturating_sub(self.next))
    }
}

/// Number methods: a number of any kind goes to the visitor (which checks its range), as with
/// serde_json; anything else is a type mismatch.
macro_rules! numbers {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
            match self.tree {
                Tree::U64(_) | Tree::I64(_) | Tree::F64(_) => self.any(visitor),
                _ => Err(self.mismatch(&visitor)),
            }
        }
    )*};
}

impl<'a> Deserializer<'a> for At<'a, '_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        self.any(visitor)
    }

    fn deserialize_option<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.tree {
            Tree::Null => self.scalar(visitor.visit_none()),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_bool<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.tree {
            Tree::Bool(b) => self.scalar(visitor.visit_bool(*b)),
            _ => Err(self.mismatch(&visitor)),
        }
    }

    fn deserialize_str<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.tree {
            Tree::Str(s) => self.scalar(visitor.visit_borrowed_str(s)),
            _ => Err(self.mismatch(&visitor)),
        }
    }

    fn deserialize_string<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_char<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.tree {
            Tree::Str(s) => self.scalar(visitor.visit_borrowed_bytes(s.as_bytes())),
            Tree::Array(items) => self.seq(items, visitor),
            _ => Err(self.mismatch(&visitor)),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_unit<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.tree {
            Tree::Null => self.scalar(visitor.visit_unit()),
            _ => Err(self.mismatch(&visitor)),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'a>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'a>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.tree {
            Tree::Array(items) => self.seq(items, visitor),
            _ => Err(self.mismatch(&visitor)),
        }
    }

    fn deserialize_tuple<V: Visitor<'a>>(self, _: usize, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'a>>(
        self,
        _: &'static str,
        _: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.tree {
            Tree::Object(members) => self.map(members, visitor),
            _ => Err(self.mismatch(&visitor)),
        }
    }

    fn deserialize_struct<V: Visitor<'a>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.tree {
            Tree::Object(members) => self.map(members, visitor),
            Tree::Array(items) => self.seq(items, visitor),
            _ => Err(self.mismatch(&visitor)),
        }
    }

    fn deserialize_enum<V: Visitor<'a>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        // Every enum of keygate's documents is read from a string by `from_str_only` or is
        // untagged; a derived externally tagged enum is refused rather than half supported.
        Err(self.mismatch(&visitor))
    }

    fn deserialize_ignored_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, Error> {
        self.scalar(visitor.visit_unit())
    }

    numbers! {
        deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128
        deserialize_f32 deserialize_f64
    }
}

/// A member name as a deserializer: a string only.
struct Name<'de>(&'de str);

impl<'de> Deserializer<'de> for Name<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_borrowed_str(self.0)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn tree(json: &str) -> Tree {
        serde_json::from_str(json).unwrap()
    }

    /// serde_json's message for `json` read as `T`, without its position.
    fn serde_json_says<T: serde::de::DeserializeOwned + std::fmt::Debug>(json: &str) -> String {
        let e = serde_json::from_str::<T>(json).unwrap_err().to_string();
        e.rsplit_once(" at line ")
            .map_or(e.clone(), |(m, _)| m.to_owned())
    }

    #[test]
    fn document_order_and_repeats_ok() {
        let Tree::Object(m) = tree(r#"{"b": 1, "a": [true, null, -2, 1.5, "x"]}"#) else {
            panic!("an object");
        };
        assert_eq!(
            m.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            ["b", "a"]
        );
        assert_eq!(
            m[1].1,
            Tree::Array(vec![
                Tree::Bool(true),
                Tree::Null,
                Tree::I64(-2),
                Tree::F64(1.5),
                Tree::Str("x".into())
            ])
        );
        let e = serde_json::from_str::<Tree>(r#"{"a": {"x": 1, "\u0078": 2}}"#).unwrap_err();
        assert!(e.to_string().starts_with(DUPLICATE), "{e}");
    }

    #[test]
    fn messages_are_serde_json_s_fails() {
        for json in [
            "1.5",
            "-0",
            "1e20",
            "18446744073709551616",
            "-1",
            "true",
            "null",
            "\"x\"",
            "[]",
            "{}",
        ] {
            let e = from_tree::<u8>(&tree(json)).unwrap_err();
            assert_eq!(e.to_string(), serde_json_says::<u8>(json), "{json}");
            let e = from_tree::<String>(&tree(json)).map(|_| ()).err();
            if let Some(e) = e {
                assert_eq!(e.to_string(), serde_json_says::<String>(json), "{json}");
            }
        }
        let e = from_tree::<Vec<u8>>(&tree("[1, 300]")).unwrap_err();
        let (message, path) = e.into_parts();
        assert_eq!(message, serde_json_says::<Vec<u8>>("[1, 300]"));
        assert_eq!(path.as_deref(), Some("[1]"));
    }
}
