//! Typed records that keep their raw JSON: orders (with gift sub-orders), refunds, items and SKUs,
//! and the pages the list APIs return them in (reference §8–§10).
//!
//! Every record parses from one element of the platform's list (or a detail `data`) and keeps
//! that element's JSON byte for byte in `raw`, so the store can keep what the platform said even
//! where the typed columns are lossy. Parsing is tolerant (see `fields`): missing fields become
//! defaults, numeric strings are numbers, `null` is absent; only an unreadable key field (the id,
//! `status`, `createTime`, `updateTime`, plus the few links and cursors each module names) or a
//! missing id rejects a record, with a [`RecordError`] that names it.

mod fields;
mod item;
mod order;
mod refund;
mod seller;

use std::fmt;

use serde_json::value::RawValue;

pub use item::{Item, ItemPage, Sku};
pub use order::{Order, OrderPage};
pub use refund::{Refund, RefundPage};
pub use seller::Seller;

use fields::{Fields, Node};

/// A record (or page) that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct RecordError {
    /// What was being read: `"order"`, `"gift order"`, `"refund"`, `"item"`, `"sku"`,
    /// `"order page"`, `"refund page"`, `"item page"`.
    pub kind: &'static str,
    /// The record's id, when it could be read.
    pub id: Option<String>,
    /// The 0-based position in its list (`orderList[3]` is element 3), when the record was one
    /// element of a list; it names a record whose id could not be read.
    pub element: Option<usize>,
    /// What is wrong.
    pub reason: String,
}

impl RecordError {
    /// An error about the record `kind` with this id (if known).
    pub fn new(kind: &'static str, id: Option<i64>, reason: impl Into<String>) -> Self {
        Self {
            kind,
            id: id.map(|i| i.to_string()),
            element: None,
            reason: reason.into(),
        }
    }

    /// Records the position in the list, unless a more precise one is already there (a gift
    /// or a SKU that failed inside its parent keeps its own position).
    fn at(mut self, element: usize) -> Self {
        self.element.get_or_insert(element);
        self
    }
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.id, self.element) {
            (Some(id), _) => write!(f, "{} {id}: {}", self.kind, self.reason),
            (None, Some(n)) => write!(f, "{} (no id, element {n}): {}", self.kind, self.reason),
            (None, None) => write!(f, "{}: {}", self.kind, self.reason),
        }
    }
}

/// A page's `data`, read once: `None` for `data: null` (an empty page), an error when it is
/// neither `null` nor an object. Its records are read from this value, not parsed again.
fn page_value<'a>(kind: &'static str, data: &'a RawValue) -> Result<Option<Node<'a>>, RecordError> {
    let value = fields::parse(data).map_err(|r| RecordError::new(kind, None, r))?;
    match value {
        Node::Null => Ok(None),
        Node::Object(_) => Ok(Some(value)),
        _ => Err(RecordError::new(
            kind,
            None,
            "data is neither null nor a JSON object",
        )),
    }
}

/// An element of a page's list that could not be read: it fails alone (it is quarantined)
/// while the rest of its page is mirrored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Rejected {
    /// The record's id when it could be read; otherwise a digest of its JSON
    /// (`raw:<16 hex digits>`), the same at every re-read of the same bytes.
    pub key: String,
    /// Whether `key` is the record's id (a retry can fetch it again by id).
    pub has_id: bool,
    /// The element's JSON, byte for byte.
    pub raw: String,
    /// Why it was rejected.
    pub error: String,
}

impl Rejected {
    /// A record that was read but that the database refused to store.
    pub fn refused(id: i64, raw: &str, error: impl std::fmt::Display) -> Self {
        Self {
            key: id.to_string(),
            has_id: true,
            raw: raw.to_string(),
            error: format!("the database refused it: {error}"),
        }
    }

    fn new(raw: &RawValue, error: RecordError) -> Self {
        let (key, has_id) = match &error.id {
            Some(id) => (id.clone(), true),
            None => {
                use sha2::Digest as _;
                let digest = sha2::Sha256::digest(raw.get().as_bytes());
                let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
                (format!("raw:{hex}"), false)
            }
        };
        Self {
            key,
            has_id,
            raw: raw.get().to_string(),
            error: error.to_string(),
        }
    }
}

/// Reads the elements of a page's list (under any of `names`). An element that cannot be read
/// is set aside as [`Rejected`], naming its position; the list itself not being a list fails the
/// page.
fn page_records<'a, T>(
    kind: &'static str,
    page: Fields<'a>,
    names: &[&str],
    read: impl Fn(&'a RawValue, &'a Node<'a>) -> Result<T, RecordError>,
) -> Result<(Vec<T>, Vec<Rejected>), RecordError> {
    let list = page
        .list(names)
        .map_err(|r| RecordError::new(kind, None, r))?;
    let mut records = Vec::with_capacity(list.len());
    let mut rejected = Vec::new();
    for (i, element) in list.iter().enumerate() {
        match read(element.raw, &element.node) {
            Ok(record) => records.push(record),
            Err(e) => rejected.push(Rejected::new(element.raw, e.at(i))),
        }
    }
    Ok((records, rejected))
}

/// A page's cursor: a key field, so a present cursor of a wrong type is an error; absent is `""`.
/// The platform documents string cursors; a numeric one still reads as its digits.
fn page_cursor(kind: &'static str, page: Fields, name: &str) -> Result<String, RecordError> {
    page.key_text(name)
        .map(Option::unwrap_or_default)
        .map_err(|r| RecordError::new(kind, None, r))
}

/// The end-of-list marker of the cursor APIs (reference §8.1, §9.1).
const NO_MORE: &str = "nomore";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_record() {
        let with_id = RecordError::new("order", Some(2_607_602_240_240_301), "updateTime is bad");
        assert_eq!(
            with_id.to_string(),
            "order 2607602240240301: updateTime is bad"
        );
        let without = RecordError::new("order", None, "oid is missing").at(3);
        assert_eq!(
            without.to_string(),
            "order (no id, element 3): oid is missing"
        );
        assert_eq!(
            without.clone().at(7).element,
            Some(3),
            "inner position kept"
        );
        let page = RecordError::new("order page", None, "orderList is not an array");
        assert_eq!(page.to_string(), "order page: orderList is not an array");
    }
}
