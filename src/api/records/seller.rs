//! The authorizing merchant, from `open.user.seller.get`: its seller id (the push envelope's
//! `userId`, the refund list's `sellerId`), its open id and name. The declaration's fields:
//! `name`, `sex`, `head`, `bigHead`, `sellerId`, `openId`, and `staffInfo` {`staffId`, `openId`,
//! `name`} when a sub-account authorized the app.

use serde_json::value::RawValue;

use super::RecordError;
use super::fields::{self, Fields};

const KIND: &str = "seller";

/// Who authorized the app for a shop.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Seller {
    /// Shared by the main account and its sub-accounts.
    pub seller_id: i64,
    /// The merchant's open id for this developer (may differ from the token's `open_id`).
    pub open_id: Option<String>,
    pub name: Option<String>,
    /// The sub-account's open id, when a sub-account authorized the app.
    pub staff_open_id: Option<String>,
}

impl Seller {
    /// Reads the `data` of `open.user.seller.get`; the seller id is required.
    pub fn from_data(data: &RawValue) -> Result<Seller, RecordError> {
        let fail = |r: String| RecordError::new(KIND, None, r);
        let value = fields::parse(data).map_err(fail)?;
        let f = Fields::record(&value).map_err(fail)?;
        let seller_id = ["sellerId", "seller_id", "userId"]
            .iter()
            .find(|n| f.has(n))
            .map_or_else(|| f.id("sellerId"), |n| f.id(n))
            .map_err(fail)?;
        Ok(Seller {
            seller_id,
            open_id: f.text("openId"),
            name: f.text("name"),
            staff_open_id: f.block("staffInfo").text("openId"),
        })
    }

    /// Every open id a push from this merchant may carry.
    pub fn open_ids(&self) -> impl Iterator<Item = &str> {
        self.open_id
            .iter()
            .chain(&self.staff_open_id)
            .map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_string()).expect("JSON")
    }

    #[test]
    fn reads_the_declared_fields_and_spellings() {
        let s = Seller::from_data(&raw(
            r#"{"name":"小店","sex":"M","head":"h","bigHead":"b","sellerId":2161524184,"openId":"f1b6","staffInfo":{"staffId":7,"openId":"s9","name":"客服"}}"#,
        ))
        .expect("seller");
        assert_eq!(s.seller_id, 2_161_524_184);
        assert_eq!(s.open_id.as_deref(), Some("f1b6"));
        assert_eq!(s.name.as_deref(), Some("小店"));
        assert_eq!(s.open_ids().collect::<Vec<_>>(), ["f1b6", "s9"]);
        let text = Seller::from_data(&raw(r#"{"seller_id":"42"}"#)).expect("seller");
        assert_eq!(text.seller_id, 42);
        assert!(Seller::from_data(&raw(r#"{"name":"x"}"#)).is_err(), "no id");
        assert!(Seller::from_data(&raw("null")).is_err());
    }
}
