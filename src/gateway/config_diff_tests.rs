//! The configuration reader against the one it replaced (serde_json's typed read of the bytes
//! after a `StrictValue` pass, the field named by `path_at` from serde_json's position): same
//! documents accepted (to the same value), same ones refused with the same field and message.
//! Over the committed fuzz corpus, the vectors, every value of those documents replaced by
//! values of other kinds, members dropped, repeated and renamed, and generated documents.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::edge_config::{EdgeConfig, PasswordOptions, TotpOptions};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::fmt::Debug;

/// The reader before the tree: both passes over the bytes.
fn old_parse<T: serde::de::DeserializeOwned>(bytes: &[u8], top: &str) -> Result<T, ConfigError> {
    serde_json::from_slice::<crate::json::StrictValue>(bytes)
        .and_then(|_| serde_json::from_slice::<T>(bytes))
        .map_err(|e| located(bytes, top, &e))
}

fn agree_as<T: serde::de::DeserializeOwned + Debug>(bytes: &[u8], top: &str) -> bool {
    // The one intended difference: a typed error in a member whose name is written with
    // escapes is named decoded (`jwks`), where the byte reader copied its source text
    // (`\u006awks`; syntax errors and repeated names still are, by both).
    let decoded = |mut e: ConfigError| {
        if let Ok(d) = serde_json::from_str::<String>(&format!("\"{}\"", e.field)) {
            e.field = d;
        }
        e
    };
    let old = old_parse::<T>(bytes, top)
        .map(|v| format!("{v:?}"))
        .map_err(decoded);
    let new = parse_document_at::<T>(bytes, top)
        .map(|v| format!("{v:?}"))
        .map_err(decoded);
    assert_eq!(
        old,
        new,
        "readers disagree on {:?}",
        String::from_utf8_lossy(bytes)
    );
    old.is_ok()
}

/// Both readers, as every document type read by `parse_document_at`; true when accepted as
/// the gateway configuration.
fn agree(bytes: &[u8]) -> bool {
    agree_as::<EdgeConfig>(bytes, "");
    agree_as::<PasswordOptions>(bytes, "");
    agree_as::<TotpOptions>(bytes, "");
    agree_as::<GatewayConfig>(bytes, "configuration")
}

/// JSON text of `v`, objects' members in `v`'s order; `dup` repeats the first member of the
/// `dup`-th object (pre-order), `escape` writes names with a `\u` escape for their first
/// character, `pretty` puts members on lines of their own.
fn render(
    v: &Value,
    dup: Option<usize>,
    escape: bool,
    pretty: bool,
    seen: &mut usize,
    out: &mut String,
) {
    let name = |k: &str, out: &mut String| {
        if escape {
            let mut chars = k.chars();
            if let Some(c) = chars.next() {
                if c.is_ascii() {
                    out.push_str(&format!("\"\\u{:04x}", c as u32));
                    out.push_str(&serde_json::to_string(chars.as_str()).unwrap()[1..]);
                    return;
                }
            }
        }
        out.push_str(&serde_json::to_string(k).unwrap());
    };
    match v {
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(if pretty { ",\n " } else { "," });
                }
                render(item, dup, escape, pretty, seen, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            let here = *seen;
            *seen += 1;
            out.push('{');
            let mut first = true;
            let mut members: Vec<(&String, &Value)> = m.iter().collect();
            if dup == Some(here) {
                if let Some(&(k, v)) = members.first() {
                    members.push((k, v));
                }
            }
            for (k, v) in members {
                if !first {
                    out.push_str(if pretty { ",\n  " } else { ", " });
                }
                first = false;
                name(k, out);
                out.push_str(": ");
                render(v, dup, escape, pretty, seen, out);
            }
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

pub(crate) fn text(v: &Value, dup: Option<usize>, escape: bool, pretty: bool) -> String {
    let mut out = String::new();
    render(v, dup, escape, pretty, &mut 0, &mut out);
    out
}

/// Values of every kind, for replacing a document's values.
pub(crate) fn replacements() -> Vec<Value> {
    vec![
        Value::Null,
        json!(true),
        json!(0),
        json!(-1),
        json!(1.5),
        json!(-0.0),
        json!(1e300),
        json!(18446744073709551615u64),
        json!(-9223372036854775808i64),
        json!(""),
        json!("x"),
        json!("enforce"),
        json!("5/minute"),
        json!([]),
        json!([1]),
        json!(["a", "b"]),
        json!([{}]),
        json!({}),
        json!({"variant": null}),
        json!({"a": 1, "b": [2]}),
    ]
}

/// Every path to a value in `v` (as pointers), root included.
pub(crate) fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match v {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                pointers(item, format!("{at}/{i}"), out);
            }
        }
        Value::Object(m) => {
            for (k, item) in m {
                pointers(
                    item,
                    format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        _ => {}
    }
}

pub(crate) fn objects(v: &Value) -> usize {
    match v {
        Value::Array(items) => items.iter().map(objects).sum(),
        Value::Object(m) => 1 + m.values().map(objects).sum::<usize>(),
        _ => 0,
    }
}

/// Runs both readers over `doc` and its variants; returns (documents, accepted).
fn variants(doc: &Value) -> (usize, usize) {
    let (mut n, mut ok) = (0, 0);
    let mut check = |bytes: &[u8]| {
        n += 1;
        ok += usize::from(agree(bytes));
    };
    for pretty in [false, true] {
        check(text(doc, None, false, pretty).as_bytes());
        check(text(doc, None, true, pretty).as_bytes());
        for d in 0..objects(doc) {
            check(text(doc, Some(d), false, pretty).as_bytes());
            check(text(doc, Some(d), true, pretty).as_bytes());
        }
    }
    let mut ptrs = Vec::new();
    pointers(doc, String::new(), &mut ptrs);
    for p in &ptrs {
        for r in replacements() {
            let mut v = doc.clone();
            *v.pointer_mut(p).unwrap() = r;
            check(text(&v, None, false, false).as_bytes());
            check(text(&v, None, false, true).as_bytes());
        }
        // The value wrapped in an array (an array where an object is meant), dropped, and
        // next to an unknown member.
        let mut v = doc.clone();
        let inner = v.pointer(p).unwrap().clone();
        *v.pointer_mut(p).unwrap() = json!([inner]);
        check(text(&v, None, false, false).as_bytes());
        if let Some((parent, last)) = p.rsplit_once('/') {
            let mut v = doc.clone();
            let pretty = match v.pointer_mut(parent).unwrap() {
                Value::Object(m) => {
                    m.remove(&last.replace("~1", "/").replace("~0", "~"));
                    false
                }
                Value::Array(items) => {
                    items.remove(last.parse::<usize>().unwrap());
                    true
                }
                _ => false,
            };
            check(text(&v, None, false, pretty).as_bytes());
            if let Some(Value::Object(m)) = v.pointer_mut(parent) {
                m.insert("zz_unknown".into(), json!(1));
                check(text(&v, None, false, false).as_bytes());
            }
        }
    }
    (n, ok)
}

pub(crate) fn corpus() -> Vec<Vec<u8>> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fuzz/corpus");
    let mut out = Vec::new();
    for dir in std::fs::read_dir(root).unwrap() {
        for f in std::fs::read_dir(dir.unwrap().path()).unwrap() {
            out.push(std::fs::read(f.unwrap().path()).unwrap());
        }
    }
    assert!(out.len() >= 6, "the corpus is read");
    out
}

#[test]
fn readers_agree_on_corpus_and_variants_ok() {
    let (mut n, mut ok) = (0, 0);
    let mut docs: Vec<Value> = Vec::new();
    for bytes in corpus() {
        n += 1;
        ok += usize::from(agree(&bytes));
        if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
            docs.push(v);
        }
    }
    let vectors: Value =
        serde_json::from_str(include_str!("../../tests/vectors/vectors.json")).unwrap();
    for key in ["public_jwks", "private_jwks", "hs_jwk"] {
        let jwks = vectors["jwt"][key].clone();
        docs.push(json!({"jwks": if key == "hs_jwk" { json!({"keys": [jwks]}) } else { jwks }}));
    }
    for doc in &docs {
        let (dn, dok) = variants(doc);
        n += dn;
        ok += dok;
    }
    eprintln!("config readers agree on {n} documents ({ok} accepted)");
    assert!(n > 5_000 && ok > 50, "{n} documents, {ok} accepted");
}

/// Member names the configuration knows (and a few it does not), for generated documents.
const NAMES: &[&str] = &[
    "issuer",
    "audiences",
    "jwks",
    "keys",
    "kty",
    "kid",
    "alg",
    "k",
    "crv",
    "x",
    "remote_jwks",
    "uri",
    "cluster",
    "token_sources",
    "header",
    "prefix",
    "cookie",
    "leeway_secs",
    "roles",
    "rules",
    "path",
    "allow",
    "methods",
    "rate_limits",
    "key",
    "limit",
    "scope",
    "mode",
    "claims_to_headers",
    "max_token_bytes",
    "forward_token",
    "rate_limit_service",
    "domain",
    "failure_mode",
    "timeCost",
    "algorithm",
    "digits",
    "zz",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        (-1e20f64..1e20).prop_map(|f| json!(f)),
        prop::sample::select(vec![
            "/",
            "ip",
            "sub",
            "public",
            "authenticated",
            "5/minute",
            "enforce",
            "shadow",
            "HS256",
            "oct",
            "Bearer ",
            "authorization",
            "x"
        ])
        .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(NAMES.to_vec()), inner), 0..6).prop_map(
                |m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            ),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]
    #[test]
    fn readers_agree_on_generated_ok(v in json_value(), dup in 0usize..4, escape: bool, pretty: bool) {
        let d = (dup < objects(&v)).then_some(dup);
        agree(text(&v, d, escape, pretty).as_bytes());
        agree(text(&json!({"jwks": {"keys": []}, "rules": [v.clone()], "rate_limits": [v]}), d, escape, pretty).as_bytes());
    }

    #[test]
    fn readers_agree_on_text_ok(s in "\\PC{0,80}") {
        agree(s.as_bytes());
    }
}
