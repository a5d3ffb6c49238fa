//! The simulated platform's data: per shop, orders, refunds and items as the platform would
//! return them (each kept as its list-view JSON document), with the indexes the list APIs need.
//!
//! Documents are stored as compact JSON text rather than `serde_json::Value` trees: list calls
//! copy them out verbatim, and a 200,000-order shop stays within a few hundred MiB.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;
use serde_json::value::RawValue;

/// Which timestamp a list query filters on (`queryType`: 1 creation, 2 update).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeField {
    Create,
    Update,
}

impl TimeField {
    /// From the platform's `queryType` (1 = creation time, the default; 2 = update time).
    pub fn from_query_type(query_type: i64) -> Option<Self> {
        match query_type {
            1 => Some(TimeField::Create),
            2 => Some(TimeField::Update),
            _ => None,
        }
    }
}

/// Who a simulated shop is, in the platform's several namespaces (reference §13.2).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ShopIdentity {
    /// The developer-scoped id the OAuth token carries.
    pub open_id: String,
    /// The long Kuaishou user id (refund `sellerId`, push `userId`).
    pub seller_id: i64,
    /// The order's `sellerOpenId` (a different string namespace).
    pub seller_open_id: String,
    pub nick: String,
}

/// One stored document with the fields the indexes and the mutation clock need.
#[derive(Debug, Clone)]
pub struct Doc {
    pub id: i64,
    pub create_time: i64,
    pub update_time: i64,
    /// The list-view JSON, compact.
    pub json: Box<RawValue>,
    /// Extra top-level fields the detail API adds (a JSON object; `{}` when none).
    pub detail_extra: Box<RawValue>,
}

impl Doc {
    /// Builds a document from JSON values.
    pub fn new(
        id: i64,
        create_time: i64,
        update_time: i64,
        json: &Value,
        detail_extra: &Value,
    ) -> Self {
        Self {
            id,
            create_time,
            update_time,
            json: to_raw(json),
            detail_extra: to_raw(detail_extra),
        }
    }

    /// The list-view JSON as a value.
    pub fn value(&self) -> Value {
        serde_json::from_str(self.json.get()).unwrap_or(Value::Null)
    }
}

/// Compact JSON text of a value.
pub fn to_raw(v: &Value) -> Box<RawValue> {
    RawValue::from_string(v.to_string()).expect("a serde_json::Value serialises to valid JSON")
}

/// A set of documents keyed by id, indexed by (creation time, id) and (update time, id).
#[derive(Debug, Default)]
pub struct DocSet {
    docs: HashMap<i64, Doc>,
    by_create: BTreeSet<(i64, i64)>,
    by_update: BTreeSet<(i64, i64)>,
}

impl DocSet {
    /// Inserts or replaces a document, keeping the indexes right.
    pub fn put(&mut self, doc: Doc) {
        if let Some(old) = self.docs.get(&doc.id) {
            self.by_create.remove(&(old.create_time, old.id));
            self.by_update.remove(&(old.update_time, old.id));
        }
        self.by_create.insert((doc.create_time, doc.id));
        self.by_update.insert((doc.update_time, doc.id));
        self.docs.insert(doc.id, doc);
    }

    /// Removes a document (an item taken down upstream).
    pub fn remove(&mut self, id: i64) -> Option<Doc> {
        let doc = self.docs.remove(&id)?;
        self.by_create.remove(&(doc.create_time, doc.id));
        self.by_update.remove(&(doc.update_time, doc.id));
        Some(doc)
    }

    pub fn get(&self, id: i64) -> Option<&Doc> {
        self.docs.get(&id)
    }

    pub fn len(&self) -> usize {
        self.docs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    /// Every document, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Doc> {
        self.docs.values()
    }

    /// Every id, ascending.
    pub fn ids_sorted(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = self.docs.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// The (time, id) index on the chosen field.
    pub fn time_index(&self, field: TimeField) -> &BTreeSet<(i64, i64)> {
        match field {
            TimeField::Create => &self.by_create,
            TimeField::Update => &self.by_update,
        }
    }

    /// (time, id) keys with `begin <= time < end` on the chosen field, ascending.
    pub fn range(
        &self,
        field: TimeField,
        begin: i64,
        end: i64,
    ) -> impl DoubleEndedIterator<Item = (i64, i64)> + '_ {
        let index = match field {
            TimeField::Create => &self.by_create,
            TimeField::Update => &self.by_update,
        };
        let (lo, hi) = if begin < end { (begin, end) } else { (0, 0) };
        index.range((lo, i64::MIN)..(hi, i64::MIN)).copied()
    }

    /// Rewrites a document's JSON with `edit`, then stamps the new update time, which is kept
    /// strictly above the old one so every change is a new version. Returns the new update time,
    /// or `None` when there is no such document.
    pub fn update(&mut self, id: i64, now: i64, edit: impl FnOnce(&mut Value, i64)) -> Option<i64> {
        self.restamp(id, now, |doc, update_time| {
            let mut value = doc.value();
            edit(&mut value, update_time);
            (to_raw(&value), doc.detail_extra.clone())
        })
    }

    /// Replaces a document's JSON and extras with what `make` builds from the old document and the
    /// new update time (kept strictly above the old one). Returns the new update time, or `None`
    /// when there is no such document.
    pub fn restamp(
        &mut self,
        id: i64,
        now: i64,
        make: impl FnOnce(&Doc, i64) -> (Box<RawValue>, Box<RawValue>),
    ) -> Option<i64> {
        let doc = self.docs.get(&id)?;
        let update_time = now.max(doc.update_time + 1);
        let (json, detail_extra) = make(doc, update_time);
        let new = Doc {
            id,
            create_time: doc.create_time,
            update_time,
            json,
            detail_extra,
        };
        self.put(new);
        Some(update_time)
    }
}

/// One simulated shop's data.
#[derive(Debug)]
pub struct ShopData {
    pub identity: ShopIdentity,
    /// Orders by `oid` (gift sub-orders live inside their parent's document).
    pub orders: DocSet,
    /// Refunds by `refundId`.
    pub refunds: DocSet,
    /// Items by `kwaiItemId`, listed in id order by the item API.
    pub items: BTreeMap<i64, Doc>,
    /// Items taken down, by `kwaiItemId`, with the instant they went (`open.item.deleted.get`
    /// answers for the last 7 days).
    pub deleted_items: BTreeMap<i64, (Doc, i64)>,
}

impl ShopData {
    pub fn new(identity: ShopIdentity) -> Self {
        Self {
            identity,
            orders: DocSet::default(),
            refunds: DocSet::default(),
            items: BTreeMap::new(),
            deleted_items: BTreeMap::new(),
        }
    }
}

/// A change the mutation clock made, for the push sender (reference §11.5).
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// Index of the shop in the platform's shop list.
    pub shop: usize,
    /// What kind of record changed.
    pub kind: ChangeKind,
    /// The record's id (`oid`, `refundId` or `kwaiItemId`): the message's `bizId`.
    pub biz_id: i64,
    /// The message name, e.g. `kwaishop_order_paySuccess`.
    pub event: &'static str,
    /// The message's `info` object (serialised to a string inside the envelope).
    pub info: Value,
    /// The record's new update time.
    pub update_time: i64,
}

/// The kinds of record a change can touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Order,
    Refund,
    Item,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn docset_indexes_follow_updates() {
        let mut set = DocSet::default();
        set.put(Doc::new(1, 100, 100, &json!({"oid": 1}), &json!({})));
        set.put(Doc::new(2, 100, 150, &json!({"oid": 2}), &json!({})));
        assert_eq!(set.range(TimeField::Update, 100, 151).count(), 2);
        let t = set
            .update(1, 120, |v, t| v["updateTime"] = json!(t))
            .expect("exists");
        assert_eq!(t, 120);
        let keys: Vec<_> = set.range(TimeField::Update, 0, 1000).collect();
        assert_eq!(keys, vec![(120, 1), (150, 2)]);
        // An update at an earlier clock reading still moves the version forward.
        let t = set.update(2, 10, |_, _| {}).expect("exists");
        assert_eq!(t, 151);
        assert_eq!(set.range(TimeField::Create, 100, 101).count(), 2);
        assert_eq!(set.range(TimeField::Update, 5, 5).count(), 0);
    }
}
