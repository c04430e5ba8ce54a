//! JSON shapes serde's derive does not enforce by itself, for every document keygate reads
//! (tokens, JWKs, configuration):
//! - an object where an object is meant: a derived struct `Deserialize` also accepts a JSON
//!   *array* (fields by position), so `[null, "/", null, "public"]` would read as a rule.
//!   [`object_only!`] gives a struct an impl that accepts a JSON object only;
//! - every member name once: maps (and a struct's ignored members) keep the last of two
//!   equal names without a word. [`StrictValue`] reads (and so checks) a whole document,
//!   refusing repeats at every depth; [`unique_map`] deserializes a map refusing repeats.
//! - strings where a name is meant: a unit enum derived with serde also accepts
//!   `{"variant": null}`; [`from_str_only`] reads a string only.

pub(crate) mod tree;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

/// The error message for a repeated member (the field path names it; no value is echoed).
pub(crate) const DUPLICATE: &str = "a member name appears twice in one object";

/// `impl Deserialize` (and, with `serialize`, `impl Serialize`) for a struct whose derives
/// carry `#[serde(remote = "Self")]`: the derived code becomes inherent functions, and the
/// trait impl here accepts only a JSON object before handing the members to them.
macro_rules! object_only {
    ($t:ty, $what:literal) => {
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> serde::de::Visitor<'de> for V {
                    type Value = $t;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str($what)
                    }
                    fn visit_map<A: serde::de::MapAccess<'de>>(
                        self,
                        map: A,
                    ) -> Result<$t, A::Error> {
                        // The inherent (derived, `remote = "Self"`) function, not this impl.
                        <$t>::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    }
                }
                d.deserialize_map(V)
            }
        }
    };
    ($t:ty, $what:literal, serialize) => {
        $crate::json::object_only!($t, $what);
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                // The inherent (derived, `remote = "Self"`) function, not this impl.
                <$t>::serialize(self, s)
            }
        }
    };
}
pub(crate) use object_only;

/// A [`Value`] whose objects, at every depth, had unique member names.
pub(crate) struct StrictValue(pub Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StrictValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_bool<E>(self, v: bool) -> Result<StrictValue, E> {
                Ok(StrictValue(Value::Bool(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<StrictValue, E> {
                Ok(StrictValue(Value::Number(v.into())))
            }
            fn visit_u64<E>(self, v: u64) -> Result<StrictValue, E> {
                Ok(StrictValue(Value::Number(v.into())))
            }
            fn visit_f64<E>(self, v: f64) -> Result<StrictValue, E> {
                Ok(StrictValue(
                    Number::from_f64(v).map_or(Value::Null, Value::Number),
                ))
            }
            fn visit_str<E>(self, v: &str) -> Result<StrictValue, E> {
                Ok(StrictValue(Value::String(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<StrictValue, E> {
                Ok(StrictValue(Value::String(v)))
            }
            fn visit_unit<E>(self) -> Result<StrictValue, E> {
                Ok(StrictValue(Value::Null))
            }
            fn visit_none<E>(self) -> Result<StrictValue, E> {
                Ok(StrictValue(Value::Null))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<StrictValue, A::Error> {
                let mut items = Vec::new();
                while let Some(StrictValue(v)) = a.next_element()? {
                    items.push(v);
                }
                Ok(StrictValue(Value::Array(items)))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<StrictValue, A::Error> {
                let mut m = Map::new();
                while let Some(k) = a.next_key::<String>()? {
                    if m.contains_key(&k) {
                        return Err(de::Error::custom(DUPLICATE));
                    }
                    let StrictValue(v) = a.next_value()?;
                    m.insert(k, v);
                }
                Ok(StrictValue(Value::Object(m)))
            }
        }
        d.deserialize_any(V)
    }
}

/// `#[serde(deserialize_with = "crate::json::unique_map")]`: a JSON object into a map,
/// refusing a repeated name (a plain `BTreeMap` keeps the last one).
pub(crate) fn unique_map<'de, D, V>(d: D) -> Result<BTreeMap<String, V>, D::Error>
where
    D: Deserializer<'de>,
    V: Deserialize<'de>,
{
    struct M<V>(PhantomData<V>);
    impl<'de, V: Deserialize<'de>> Visitor<'de> for M<V> {
        type Value = BTreeMap<String, V>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
            let mut m = BTreeMap::new();
            while let Some(k) = a.next_key::<String>()? {
                if m.contains_key(&k) {
                    return Err(de::Error::custom(DUPLICATE));
                }
                let v = a.next_value()?;
                m.insert(k, v);
            }
            Ok(m)
        }
    }
    d.deserialize_map(M(PhantomData))
}

/// A JSON string parsed with `T::from_str` (for unit enums: a derived enum would also take
/// `{"variant": null}`).
pub(crate) fn from_str_only<'de, D, T>(d: D, what: &'static str) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: fmt::Display,
{
    struct S<T>(&'static str, PhantomData<T>);
    impl<T: FromStr> Visitor<'_> for S<T>
    where
        T::Err: fmt::Display,
    {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
            v.parse().map_err(E::custom)
        }
    }
    d.deserialize_str(S(what, PhantomData))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn unique_ok() {
        for ok in [
            r#"{"a": 1, "b": {"a": 2}, "c": [{"a": 1}, {"a": 1}]}"#,
            "[]",
            "null",
            r#""x""#,
            "1.5",
            r#"{"a\u0062": 1, "ab2": 2}"#,
        ] {
            assert!(serde_json::from_str::<StrictValue>(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn repeated_member_fails() {
        for bad in [
            r#"{"a": 1, "a": 2}"#,
            r#"{"x": {"a": 1, "a": 1}}"#,
            r#"[{"k": [{"a": 1, "b": 2, "a": 3}]}]"#,
            // An escaped name is the same name.
            r#"{"sub": 1, "s\u0075b": 2}"#,
        ] {
            let e = serde_json::from_str::<StrictValue>(bad).err().unwrap();
            assert!(e.to_string().contains(DUPLICATE), "{bad}: {e}");
        }
    }

    #[test]
    fn unique_map_fails() {
        #[derive(serde::Deserialize)]
        struct W {
            #[serde(deserialize_with = "unique_map")]
            m: BTreeMap<String, u8>,
        }
        assert_eq!(
            serde_json::from_str::<W>(r#"{"m": {"a": 1, "b": 2}}"#)
                .unwrap()
                .m
                .len(),
            2
        );
        assert!(serde_json::from_str::<W>(r#"{"m": {"a": 1, "a": 2}}"#).is_err());
        assert!(serde_json::from_str::<W>(r#"{"m": [["a", 1]]}"#).is_err());
    }

    #[derive(Debug, PartialEq, serde::Deserialize, serde::Serialize)]
    #[serde(remote = "Self", deny_unknown_fields)]
    struct Point {
        x: u8,
        #[serde(default)]
        y: u8,
    }
    object_only!(Point, "a point object", serialize);

    #[test]
    fn object_only_ok() {
        let p: Point = serde_json::from_str(r#"{"x": 1, "y": 2}"#).unwrap();
        assert_eq!(p, Point { x: 1, y: 2 });
        assert_eq!(serde_json::to_string(&p).unwrap(), r#"{"x":1,"y":2}"#);
        let v: Vec<Point> = serde_json::from_str(r#"[{"x": 3}]"#).unwrap();
        assert_eq!(v, [Point { x: 3, y: 0 }]);
        let p: Point = serde_json::from_value(serde_json::json!({"x": 4})).unwrap();
        assert_eq!(p.x, 4);
    }

    #[test]
    fn array_for_object_fails() {
        let e = serde_json::from_str::<Point>("[1, 2]").unwrap_err();
        assert!(e.to_string().contains("a point object"), "{e}");
        assert!(serde_json::from_str::<Point>(r#"{"x": 1, "x": 1}"#).is_err());
        assert!(serde_json::from_str::<Point>(r#"{"x": 1, "z": 1}"#).is_err());
        assert!(serde_json::from_value::<Point>(serde_json::json!([1, 2])).is_err());
        assert!(serde_json::from_str::<Vec<Point>>("[[1, 2]]").is_err());
    }

    proptest! {
        #[test]
        fn strict_value_agrees_with_value(s in "\\PC{0,64}") {
            if let Ok(StrictValue(v)) = serde_json::from_str::<StrictValue>(&s) {
                prop_assert_eq!(serde_json::from_str::<Value>(&s).ok(), Some(v));
            }
        }
    }
}
