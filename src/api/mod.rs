//! The Kuaishou open platform client: signing, request building, the response envelope, error
//! classes, OAuth, rate limits and daily quota, retries, and typed records that keep their raw JSON.

pub mod calls;
pub mod client;
pub mod codes;
pub mod envelope;
pub mod error;
pub mod hourly;
pub mod limits;
pub mod oauth;
pub mod records;
pub mod retry;
pub mod sign;
mod tokens;
mod transport;

pub use client::{ApiClient, AppCredentials, ClientOptions, RetryPolicy};
pub use error::{ApiError, ErrorClass};
pub use hourly::{HourlyCalls, HourlyCount};
pub use sign::SignMethod;

/// The production gateway.
pub const DEFAULT_BASE_URL: &str = "https://openapi.kwaixiaodian.com";
/// Where a merchant authorizes an app.
pub const DEFAULT_AUTHORIZE_URL: &str = "https://open.kwaixiaodian.com/oauth/authorize";
/// The scopes kwaishop-sync needs (reference §7.1).
pub const REQUIRED_SCOPES: [&str; 3] = ["merchant_order", "merchant_refund", "merchant_item"];

/// The APIs kwaishop-sync calls (all of them read).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Method {
    #[serde(rename = "open.order.cursor.list")]
    OrderCursorList,
    #[serde(rename = "open.order.detail")]
    OrderDetail,
    #[serde(rename = "open.seller.order.refund.pcursor.list")]
    RefundList,
    #[serde(rename = "open.seller.order.refund.detail")]
    RefundDetail,
    #[serde(rename = "open.item.list.get")]
    ItemList,
    /// An item deleted in the last 7 days, by id.
    #[serde(rename = "open.item.deleted.get")]
    ItemDeletedGet,
    /// The authorizing merchant: seller id, open id, name.
    #[serde(rename = "open.user.seller.get")]
    SellerGet,
}

impl Method {
    /// Every method, in a stable order.
    pub const ALL: [Method; 7] = [
        Method::OrderCursorList,
        Method::OrderDetail,
        Method::RefundList,
        Method::RefundDetail,
        Method::ItemList,
        Method::ItemDeletedGet,
        Method::SellerGet,
    ];

    /// The dotted name sent as `method`.
    pub fn name(self) -> &'static str {
        match self {
            Method::OrderCursorList => "open.order.cursor.list",
            Method::OrderDetail => "open.order.detail",
            Method::RefundList => "open.seller.order.refund.pcursor.list",
            Method::RefundDetail => "open.seller.order.refund.detail",
            Method::ItemList => "open.item.list.get",
            Method::ItemDeletedGet => "open.item.deleted.get",
            Method::SellerGet => "open.user.seller.get",
        }
    }

    /// Whether the method reads a page of a list: the calls a backfill's windows wait on, the
    /// only ones sent a second time beside a slow first. A detail (one order, refund or item
    /// a push named) is sent once: a second copy would spend quota on a read whose lateness
    /// holds nothing up.
    pub fn lists(self) -> bool {
        matches!(
            self,
            Method::OrderCursorList | Method::RefundList | Method::ItemList
        )
    }

    /// The URL path: the dotted name with `.` replaced by `/`.
    pub fn path(self) -> String {
        format!("/{}", self.name().replace('.', "/"))
    }

    /// The method with this dotted name.
    pub fn from_name(name: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.name() == name)
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_dotted_names() {
        assert_eq!(Method::OrderCursorList.path(), "/open/order/cursor/list");
        assert_eq!(
            Method::RefundList.path(),
            "/open/seller/order/refund/pcursor/list"
        );
        assert_eq!(
            Method::from_name("open.item.list.get"),
            Some(Method::ItemList)
        );
        assert_eq!(Method::from_name("open.item.list"), None);
    }
}
