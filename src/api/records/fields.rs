//! Lenient field reading shared by the record parsers.
//!
//! The platform's documents drift: numbers arrive as numeric strings, blocks go missing, `null`
//! stands in for "not set", and SDKs disagree on spellings. Two strictness levels cover it:
//!
//! * **key** fields (ids, `status`, `createTime`, `updateTime`, cursors) must have a readable type
//!   or the record is rejected: a wrong key would upsert the wrong row or version;
//! * **descriptive** fields degrade to their default when the type is impossible: losing one
//!   column is better than losing the record, and the raw JSON kept beside it still has the value.

use std::collections::HashMap;

use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// How a JSON value reads as an integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Int {
    /// Absent, `null` or an empty string.
    Missing,
    Value(i64),
    /// Present with a type or text that is not an integer.
    Invalid,
}

fn read_int(v: Option<&Value>) -> Int {
    match v {
        None | Some(Value::Null) => Int::Missing,
        Some(Value::Number(n)) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Int::Value(i),
            // A whole float (`30.0`) is still 30; fractions and out-of-range values are not ids,
            // fen or milliseconds. 2^63 is exactly representable, so the bound check is exact.
            (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9_223_372_036_854_775_808.0 => {
                Int::Value(f as i64)
            }
            _ => Int::Invalid,
        },
        Some(Value::String(s)) => match s.trim() {
            "" => Int::Missing,
            t => t.parse().map_or(Int::Invalid, Int::Value),
        },
        Some(_) => Int::Invalid,
    }
}

/// A short rendering of an offending value for error messages.
fn show(v: &Value) -> String {
    let s = v.to_string();
    match s.char_indices().nth(40) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s,
    }
}

/// A read-only view of one JSON object; a missing or non-object block reads as empty.
#[derive(Debug, Clone, Copy)]
pub(super) struct Fields<'a>(Option<&'a Map<String, Value>>);

impl<'a> Fields<'a> {
    /// The fields of a record's top-level value, which must be an object.
    pub fn record(v: &'a Value) -> Result<Self, String> {
        match v {
            Value::Object(m) => Ok(Fields(Some(m))),
            other => Err(format!("is not a JSON object but {}", show(other))),
        }
    }

    /// The fields of an optional object; anything but an object reads as empty.
    pub fn of(v: Option<&'a Value>) -> Self {
        Fields(v.and_then(Value::as_object))
    }

    /// A field's value; `null` counts as absent.
    pub fn get(&self, name: &str) -> Option<&'a Value> {
        self.0?.get(name).filter(|v| !v.is_null())
    }

    /// Whether a field is present and not `null`.
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// A nested object; anything but an object reads as an empty block.
    pub fn block(&self, name: &str) -> Fields<'a> {
        Fields(self.get(name).and_then(Value::as_object))
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
            Some(Value::Object(m)) => Ok(Fields(Some(m))),
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
        self.get(name).and_then(crate::api::envelope::lenient_text)
    }

    /// A descriptive list of integers; unreadable elements are skipped.
    pub fn ints(&self, name: &str) -> Vec<i64> {
        let Some(Value::Array(items)) = self.get(name) else {
            return Vec::new();
        };
        items
            .iter()
            .filter_map(|v| match read_int(Some(v)) {
                Int::Value(i) => Some(i),
                _ => None,
            })
            .collect()
    }

    /// The first object of a descriptive array (the platform lists newest first), taken from
    /// the first spelling whose array has one.
    pub fn first_of(&self, names: &[&str]) -> Fields<'a> {
        let first = names
            .iter()
            .find_map(|n| self.get(n)?.as_array()?.first()?.as_object());
        Fields(first)
    }

    /// This block if it is present, else `other`.
    pub fn or(self, other: Fields<'a>) -> Fields<'a> {
        if self.0.is_some() { self } else { other }
    }
}

/// Parses a record's raw JSON into a value (only fails past serde_json's nesting limit, since a
/// `RawValue` is already valid JSON).
pub(super) fn parse(raw: &RawValue) -> Result<Value, String> {
    serde_json::from_str(raw.get()).map_err(|e| format!("cannot be read: {e}"))
}

/// The elements of a list field of the object `raw`, each kept byte for byte.
///
/// `names` are alternative spellings: the first that holds elements wins, else the list is empty.
/// A spelling that is present (not `null`) but not an array is an error, since dropping it
/// would silently lose records.
pub(super) fn raw_list<'a>(raw: &'a RawValue, names: &[&str]) -> Result<Vec<&'a RawValue>, String> {
    let object: HashMap<String, &'a RawValue> =
        serde_json::from_str(raw.get()).map_err(|_| "is not a JSON object".to_string())?;
    let mut found = Vec::new();
    for name in names {
        let Some(field) = object.get(*name) else {
            continue;
        };
        if field.get() == "null" {
            continue;
        }
        let list: Vec<&'a RawValue> =
            serde_json::from_str(field.get()).map_err(|_| format!("{name} is not an array"))?;
        if found.is_empty() {
            found = list;
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn integers_read_leniently_but_keys_reject_nonsense() {
        let v = json!({"a": "30", "b": 30.0, "c": " 7 ", "d": "", "e": null, "f": "abc",
                        "g": [1], "h": 1.5, "i": 1e30, "j": true});
        let f = Fields::record(&v).expect("object");
        assert_eq!(f.key_int("a"), Ok(Some(30)));
        assert_eq!(f.key_int("b"), Ok(Some(30)));
        assert_eq!(f.key_int("c"), Ok(Some(7)));
        assert_eq!(f.key_int("d"), Ok(None));
        assert_eq!(f.key_int("e"), Ok(None));
        assert_eq!(f.key_int("zz"), Ok(None));
        for bad in ["f", "g", "h", "i", "j"] {
            let err = f.key_int(bad).expect_err(bad);
            assert!(err.starts_with(&format!("{bad} is not a number")), "{err}");
            assert_eq!(f.int(bad), None, "{bad} degrades");
        }
        assert_eq!(f.int_or_zero("f"), 0);
    }

    #[test]
    fn ids_must_be_present_and_nonzero() {
        let v = json!({"zero": 0, "ok": "2607602240240301", "obj": {"x": 1}});
        let f = Fields::record(&v).expect("object");
        assert_eq!(f.id("ok"), Ok(2_607_602_240_240_301));
        assert_eq!(f.id("zero"), Err("zero is missing".to_string()));
        assert_eq!(f.id("none"), Err("none is missing".to_string()));
        assert_eq!(
            f.id("obj"),
            Err(r#"obj is not a number: {"x":1}"#.to_string())
        );
    }

    #[test]
    fn raw_lists_keep_bytes_and_prefer_the_spelling_with_elements() {
        let raw: Box<RawValue> =
            serde_json::from_str(r#"{"a": [], "b": [ {"x" : 1} , 2 ], "c": null}"#).expect("json");
        let list = raw_list(&raw, &["c", "a", "b"]).expect("list");
        let got: Vec<&str> = list.iter().map(|r| r.get()).collect();
        assert_eq!(got, vec![r#"{"x" : 1}"#, "2"]);
        let first_wins = raw_list(&raw, &["b", "a"]).expect("list");
        assert_eq!(
            first_wins.len(),
            2,
            "a later empty spelling does not replace elements"
        );
        assert!(raw_list(&raw, &["zz"]).expect("absent").is_empty());
        let bad: Box<RawValue> = serde_json::from_str(r#"{"a": {"x": 1}}"#).expect("json");
        assert_eq!(
            raw_list(&bad, &["a"]).expect_err("not an array"),
            "a is not an array"
        );
    }
}
