//! Lenient field reading shared by the record parsers.
//!
//! The platform's documents drift: numbers arrive as numeric strings, blocks go missing, `null`
//! stands in for "not set", and SDKs disagree on spellings. Two strictness levels cover it:
//!
//! * **key** fields (ids, `status`, `createTime`, `updateTime`, cursors) must have a readable type
//!   or the record is rejected: a wrong key would upsert the wrong row or version;
//! * **descriptive** fields degrade to their default when the type is impossible: losing one
//!   column is better than losing the record, and the raw JSON kept beside it still has the value.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// How deep a record's JSON may nest (serde_json's own limit is 128): the documents nest four
/// levels; a deeper one is not a record.
const MAX_DEPTH: usize = 64;

/// A JSON value read from a page's bytes without copying them: strings without escapes and
/// object keys borrow the text, objects keep their fields in document order (they are small, a
/// scan finds a field), and each array element keeps its own bytes beside its value, so a record
/// and its sub-records are parsed once, not once per level.
#[derive(Debug, Clone)]
pub(super) enum Node<'a> {
    Null,
    Bool(bool),
    Int(i64),
    /// An integer above `i64::MAX`: never an id, amount or time.
    Big(u64),
    Float(f64),
    Str(Cow<'a, str>),
    Array(Vec<Element<'a>>),
    Object(Vec<(Cow<'a, str>, Node<'a>)>),
}

/// One element of an array: its JSON byte for byte, and its value.
#[derive(Debug, Clone)]
pub(super) struct Element<'a> {
    pub raw: &'a RawValue,
    pub node: Node<'a>,
}

impl<'a> Node<'a> {
    fn as_object(&self) -> Option<&[(Cow<'a, str>, Node<'a>)]> {
        match self {
            Node::Object(fields) => Some(fields),
            _ => None,
        }
    }

    fn is_null(&self) -> bool {
        matches!(self, Node::Null)
    }
}

/// Renders a value as compact JSON (error messages).
impl fmt::Display for Node<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Null => f.write_str("null"),
            Node::Bool(b) => write!(f, "{b}"),
            Node::Int(i) => write!(f, "{i}"),
            Node::Big(u) => write!(f, "{u}"),
            Node::Float(x) => match serde_json::Number::from_f64(*x) {
                Some(n) => write!(f, "{n}"),
                None => f.write_str("null"),
            },
            Node::Str(s) => write!(f, "{}", serde_json::Value::from(s.as_ref())),
            Node::Array(items) => {
                f.write_str("[")?;
                for (i, e) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{}", e.node)?;
                }
                f.write_str("]")
            }
            Node::Object(fields) => {
                f.write_str("{")?;
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{}:{v}", serde_json::Value::from(k.as_ref()))?;
                }
                f.write_str("}")
            }
        }
    }
}

/// Reads a [`Node`] at a given depth.
#[derive(Clone, Copy)]
struct Seed {
    depth: usize,
}

impl Seed {
    fn deeper<E: de::Error>(self) -> Result<Seed, E> {
        if self.depth >= MAX_DEPTH {
            return Err(E::custom(format!("nests deeper than {MAX_DEPTH} levels")));
        }
        Ok(Seed {
            depth: self.depth + 1,
        })
    }
}

impl<'de> DeserializeSeed<'de> for Seed {
    type Value = Node<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Node<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

/// An object key, borrowed when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_string())))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s)))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

impl<'de> Visitor<'de> for Seed {
    type Value = Node<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
    }
    fn visit_unit<E>(self) -> Result<Node<'de>, E> {
        Ok(Node::Null)
    }
    fn visit_none<E>(self) -> Result<Node<'de>, E> {
        Ok(Node::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node<'de>, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Node<'de>, E> {
        Ok(Node::Bool(b))
    }
    fn visit_i64<E>(self, i: i64) -> Result<Node<'de>, E> {
        Ok(Node::Int(i))
    }
    fn visit_u64<E>(self, u: u64) -> Result<Node<'de>, E> {
        Ok(i64::try_from(u).map_or(Node::Big(u), Node::Int))
    }
    fn visit_f64<E>(self, x: f64) -> Result<Node<'de>, E> {
        Ok(Node::Float(x))
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Node<'de>, E> {
        Ok(Node::Str(Cow::Borrowed(s)))
    }
    fn visit_str<E>(self, s: &str) -> Result<Node<'de>, E> {
        Ok(Node::Str(Cow::Owned(s.to_string())))
    }
    fn visit_string<E>(self, s: String) -> Result<Node<'de>, E> {
        Ok(Node::Str(Cow::Owned(s)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node<'de>, A::Error> {
        let inner = self.deeper()?;
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        // Each element is taken as its bytes, then read from them: both come from one pass
        // over the page's text per level, with no copy.
        while let Some(raw) = seq.next_element::<&'de RawValue>()? {
            let mut d = serde_json::Deserializer::from_str(raw.get());
            let node = inner.deserialize(&mut d).map_err(de::Error::custom)?;
            items.push(Element { raw, node });
        }
        Ok(Node::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node<'de>, A::Error> {
        let inner = self.deeper()?;
        let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            let value = map.next_value_seed(inner)?;
            fields.push((key, value));
        }
        Ok(Node::Object(fields))
    }
}

/// How a JSON value reads as an integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Int {
    /// Absent, `null` or an empty string.
    Missing,
    Value(i64),
    /// Present with a type or text that is not an integer.
    Invalid,
}

fn read_int(v: Option<&Node>) -> Int {
    match v {
        None | Some(Node::Null) => Int::Missing,
        Some(Node::Int(i)) => Int::Value(*i),
        // A whole float (`30.0`) is still 30; fractions and out-of-range values are not ids,
        // fen or milliseconds. 2^63 is exactly representable, so the bound check is exact.
        Some(Node::Float(f)) if f.fract() == 0.0 && f.abs() < 9_223_372_036_854_775_808.0 => {
            Int::Value(*f as i64)
        }
        Some(Node::Str(s)) => match s.trim() {
            "" => Int::Missing,
            t => t.parse().map_or(Int::Invalid, Int::Value),
        },
        Some(_) => Int::Invalid,
    }
}

/// A short rendering of an offending value for error messages.
fn show(v: &Node) -> String {
    let s = v.to_string();
    match s.char_indices().nth(40) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s,
    }
}

/// A JSON string or number as text; `null` and empty strings are `None`.
fn lenient_text(v: &Node) -> Option<String> {
    match v {
        Node::Str(s) if !s.is_empty() => Some(s.to_string()),
        Node::Int(_) | Node::Big(_) | Node::Float(_) | Node::Bool(_) => Some(v.to_string()),
        _ => None,
    }
}

/// A read-only view of one JSON object; a missing or non-object block reads as empty.
#[derive(Debug, Clone, Copy)]
pub(super) struct Fields<'a>(Option<&'a [(Cow<'a, str>, Node<'a>)]>);

impl<'a> Fields<'a> {
    /// The fields of a record's top-level value, which must be an object.
    pub fn record(v: &'a Node<'a>) -> Result<Self, String> {
        match v {
            Node::Object(m) => Ok(Fields(Some(m))),
            other => Err(format!("is not a JSON object but {}", show(other))),
        }
    }

    /// The fields of an optional object; anything but an object reads as empty.
    pub fn of(v: Option<&'a Node<'a>>) -> Self {
        Fields(v.and_then(Node::as_object))
    }

    /// A field's value; `null` counts as absent. Of a field given twice, the last counts.
    pub fn get(&self, name: &str) -> Option<&'a Node<'a>> {
        let fields = self.0?;
        fields
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
            .filter(|v| !v.is_null())
    }

    /// Whether a field is present and not `null`.
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// A nested object; anything but an object reads as an empty block.
    pub fn block(&self, name: &str) -> Fields<'a> {
        Fields(self.get(name).and_then(Node::as_object))
    }

    /// The first of several spellings of a nested object that is present.
    pub fn block_of(&self, names: &[&str]) -> Fields<'a> {
        names
            .iter()
            .find(|n| self.has(n))
            .map_or(Fields(None), |n| self.block(n))
    }

    /// A nested object that holds key fields: present but not an object is an error.
    pub fn key_block(&self, name: &str) -> Result<Fields<'a>, String> {
        match self.get(name) {
            None => Ok(Fields(None)),
            Some(Node::Object(m)) => Ok(Fields(Some(m))),
            Some(other) => Err(format!("{name} is not an object: {}", show(other))),
        }
    }

    /// A key integer: `None` when absent, an error when present but not an integer.
    pub fn key_int(&self, name: &str) -> Result<Option<i64>, String> {
        let v = self.get(name);
        match read_int(v) {
            Int::Missing => Ok(None),
            Int::Value(i) => Ok(Some(i)),
            Int::Invalid => Err(format!(
                "{name} is not a number: {}",
                v.map_or_else(String::new, show)
            )),
        }
    }

    /// A record's id: it must be present, an integer, and not 0 (0 is the platform's "unset").
    pub fn id(&self, name: &str) -> Result<i64, String> {
        match self.key_int(name)? {
            None | Some(0) => Err(format!("{name} is missing")),
            Some(id) => Ok(id),
        }
    }

    /// A descriptive integer; anything unreadable is `None`.
    pub fn int(&self, name: &str) -> Option<i64> {
        match read_int(self.get(name)) {
            Int::Value(i) => Some(i),
            Int::Missing | Int::Invalid => None,
        }
    }

    /// A descriptive count or amount: 0 when absent or unreadable.
    pub fn int_or_zero(&self, name: &str) -> i64 {
        self.int(name).unwrap_or(0)
    }

    /// A descriptive id or timestamp where 0 means "none" (not reached, not set).
    pub fn nonzero(&self, name: &str) -> Option<i64> {
        self.int(name).filter(|&i| i != 0)
    }

    /// A descriptive text; numbers and booleans are rendered, empty strings are `None`.
    pub fn text(&self, name: &str) -> Option<String> {
        self.get(name).and_then(lenient_text)
    }

    /// A key text (a cursor): absent is `None`; a number reads as its digits; anything else is
    /// an error.
    pub fn key_text(&self, name: &str) -> Result<Option<String>, String> {
        match self.get(name) {
            None => Ok(None),
            Some(Node::Str(s)) => Ok(Some(s.to_string())),
            Some(n @ (Node::Int(_) | Node::Big(_) | Node::Float(_))) => Ok(Some(n.to_string())),
            Some(_) => Err(format!("{name} is not a string")),
        }
    }

    /// A descriptive list of integers; unreadable elements are skipped.
    pub fn ints(&self, name: &str) -> Vec<i64> {
        let Some(Node::Array(items)) = self.get(name) else {
            return Vec::new();
        };
        items
            .iter()
            .filter_map(|e| match read_int(Some(&e.node)) {
                Int::Value(i) => Some(i),
                _ => None,
            })
            .collect()
    }

    /// The first object of a descriptive array (the platform lists newest first), taken from
    /// the first spelling whose array has one.
    pub fn first_of(&self, names: &[&str]) -> Fields<'a> {
        let first = names.iter().find_map(|n| match self.get(n)? {
            Node::Array(items) => items.first()?.node.as_object(),
            _ => None,
        });
        Fields(first)
    }

    /// The elements of a list field, each with its bytes.
    ///
    /// `names` are alternative spellings: the first that holds elements wins, else the list is
    /// empty. A spelling that is present (not `null`) but not an array is an error, since
    /// dropping it would silently lose records.
    pub fn list(&self, names: &[&str]) -> Result<&'a [Element<'a>], String> {
        let mut found: &'a [Element<'a>] = &[];
        for name in names {
            match self.get(name) {
                Some(Node::Array(items)) if found.is_empty() => found = items,
                None | Some(Node::Array(_)) => {}
                Some(_) => return Err(format!("{name} is not an array")),
            }
        }
        Ok(found)
    }

    /// This block if it is present, else `other`.
    pub fn or(self, other: Fields<'a>) -> Fields<'a> {
        if self.0.is_some() { self } else { other }
    }
}

/// Reads a record's (or page's) raw JSON into a borrowed value; fails only past the nesting
/// limit, since a `RawValue` is already valid JSON.
pub(super) fn parse(raw: &RawValue) -> Result<Node<'_>, String> {
    let mut d = serde_json::Deserializer::from_str(raw.get());
    Seed { depth: 0 }
        .deserialize(&mut d)
        .map_err(|e| format!("cannot be read: {e}"))
}

#[cfg(test)]
mod tests;
