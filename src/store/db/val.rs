//! One bound parameter and what converts into it.

use std::borrow::Cow;

/// One bound parameter: every column of the schema is a 64-bit integer or text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val<'a> {
    Int(Option<i64>),
    Text(Option<Cow<'a, str>>),
}

/// Text as both backends store it: without U+0000. Postgres refuses the character in text
/// (SQLite keeps it), so a remark or a title carrying one would fail its whole page on one
/// backend and be stored on the other; dropped here, the two mirrors agree, and the record's
/// raw JSON still shows it (as the escape `\u0000`, which is plain text).
fn storable<'a>(text: Cow<'a, str>) -> Cow<'a, str> {
    if text.contains('\0') {
        Cow::Owned(text.replace('\0', ""))
    } else {
        text
    }
}

impl<'a> Val<'a> {
    fn text(text: Option<Cow<'a, str>>) -> Self {
        Val::Text(text.map(storable))
    }
}

impl From<i64> for Val<'_> {
    fn from(v: i64) -> Self {
        Val::Int(Some(v))
    }
}

impl From<Option<i64>> for Val<'_> {
    fn from(v: Option<i64>) -> Self {
        Val::Int(v)
    }
}

impl<'a> From<&'a str> for Val<'a> {
    fn from(v: &'a str) -> Self {
        Val::text(Some(Cow::Borrowed(v)))
    }
}

impl<'a> From<&'a String> for Val<'a> {
    fn from(v: &'a String) -> Self {
        Val::text(Some(Cow::Borrowed(v)))
    }
}

impl From<String> for Val<'_> {
    fn from(v: String) -> Self {
        Val::text(Some(Cow::Owned(v)))
    }
}

impl<'a> From<&'a Option<String>> for Val<'a> {
    fn from(v: &'a Option<String>) -> Self {
        Val::text(v.as_deref().map(Cow::Borrowed))
    }
}

impl From<&i64> for Val<'_> {
    fn from(v: &i64) -> Self {
        Val::Int(Some(*v))
    }
}

impl From<&Option<i64>> for Val<'_> {
    fn from(v: &Option<i64>) -> Self {
        Val::Int(*v)
    }
}

/// A list of integers (`activity_types`) is stored as its JSON text.
impl From<&Vec<i64>> for Val<'_> {
    fn from(v: &Vec<i64>) -> Self {
        Val::Text(Some(Cow::Owned(
            serde_json::Value::from(v.clone()).to_string(),
        )))
    }
}

impl<'a> From<Option<&'a str>> for Val<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Val::text(v.map(Cow::Borrowed))
    }
}
