//! The open-platform APIs the simulator serves (reference §6, §8–§10), by their dotted names.

/// One served API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    /// `open.order.cursor.list`: orders by cursor over a time window.
    OrderCursorList,
    /// `open.order.detail`: one order.
    OrderDetail,
    /// `open.seller.order.refund.pcursor.list`: refunds by page cursor over a time window.
    RefundList,
    /// `open.seller.order.refund.detail`: one refund.
    RefundDetail,
    /// `open.item.list.get`: items by page.
    ItemList,
    /// `open.item.deleted.get`: an item deleted in the last 7 days, by id.
    ItemDeletedGet,
    /// `open.user.seller.get`: the authorizing merchant.
    SellerGet,
}

impl Method {
    /// Every served API.
    pub const ALL: [Method; 7] = [
        Method::OrderCursorList,
        Method::OrderDetail,
        Method::RefundList,
        Method::RefundDetail,
        Method::ItemList,
        Method::ItemDeletedGet,
        Method::SellerGet,
    ];

    /// The dotted name a caller sends as `method`.
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

    /// The gateway path the API is served at: its dotted name with `.` as `/`.
    pub fn path(self) -> String {
        format!("/{}", self.name().replace('.', "/"))
    }

    /// The platform's default QPS limit per app for this API (reference §12.1): 300 for the
    /// order list, 100 for the rest.
    pub fn default_qps(self) -> f64 {
        match self {
            Method::OrderCursorList => 300.0,
            _ => 100.0,
        }
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
    }
}
