//! The five read APIs as typed calls. Each builds its `param` JSON, calls through the client and
//! parses the page; a record that does not parse fails the call naming it (class `malformed`).

use serde_json::json;
use tracing::debug;

use super::client::ApiClient;
use super::error::{ApiError, ErrorClass};
use super::records::{Item, ItemPage, Order, OrderPage, RecordError, Refund, RefundPage, Seller};
use super::{Method, envelope::Success};

/// Which time a list window filters on (`queryType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryType {
    CreateTime = 1,
    UpdateTime = 2,
}

/// One page request of `open.order.cursor.list`.
#[derive(Debug, Clone)]
pub struct OrderQuery {
    pub begin_ms: i64,
    pub end_ms: i64,
    /// `""` for the first page, then the previous page's cursor.
    pub cursor: String,
    /// At most 50.
    pub page_size: u32,
    pub query_type: QueryType,
    /// 1 = time descending (the platform's default), 2 = ascending.
    pub sort: i64,
}

/// One page request of `open.seller.order.refund.pcursor.list`.
#[derive(Debug, Clone)]
pub struct RefundQuery {
    pub begin_ms: i64,
    pub end_ms: i64,
    pub pcursor: String,
    /// At most 100.
    pub page_size: u32,
    pub query_type: QueryType,
    pub sort: i64,
}

fn malformed(method: Method, e: RecordError) -> ApiError {
    ApiError::local(ErrorClass::Malformed, method.name(), e.to_string())
}

fn with_id(method: Method, ok: &Success, e: RecordError) -> ApiError {
    ApiError {
        request_id: ok.request_id.clone(),
        ..malformed(method, e)
    }
}

impl ApiClient {
    /// One page of orders in a window.
    pub async fn order_page(&self, shop: &str, q: &OrderQuery) -> Result<OrderPage, ApiError> {
        let method = Method::OrderCursorList;
        // Signed exactly as sent: the client never re-serialises a param after signing.
        let param = json!({
            "orderViewStatus": 1,
            "pageSize": q.page_size,
            "sort": q.sort,
            "queryType": q.query_type as i64,
            "beginTime": q.begin_ms,
            "endTime": q.end_ms,
            "cursor": q.cursor,
        });
        let ok = self.call(shop, method, &param.to_string()).await?;
        OrderPage::from_data(&ok.data).map_err(|e| with_id(method, &ok, e))
    }

    /// One order with its gift sub-orders and detail-only fields.
    pub async fn order_detail(&self, shop: &str, oid: i64) -> Result<Order, ApiError> {
        let method = Method::OrderDetail;
        let ok = self
            .call(shop, method, &json!({ "oid": oid }).to_string())
            .await?;
        Order::from_raw(&ok.data).map_err(|e| with_id(method, &ok, e))
    }

    /// One page of refunds (all types) in a window.
    pub async fn refund_page(&self, shop: &str, q: &RefundQuery) -> Result<RefundPage, ApiError> {
        let method = Method::RefundList;
        let param = json!({
            "beginTime": q.begin_ms,
            "endTime": q.end_ms,
            "type": 9,
            "pageSize": q.page_size,
            "currentPage": 1,
            "sort": q.sort,
            "queryType": q.query_type as i64,
            "pcursor": q.pcursor,
        });
        let ok = self.call(shop, method, &param.to_string()).await?;
        RefundPage::from_data(&ok.data).map_err(|e| with_id(method, &ok, e))
    }

    /// One refund with its detail-only fields.
    pub async fn refund_detail(&self, shop: &str, refund_id: i64) -> Result<Refund, ApiError> {
        let method = Method::RefundDetail;
        let ok = self
            .call(shop, method, &json!({ "refundId": refund_id }).to_string())
            .await?;
        Refund::from_raw(&ok.data).map_err(|e| with_id(method, &ok, e))
    }

    /// One page (1-based) of the shop's items.
    pub async fn item_page(
        &self,
        shop: &str,
        page_number: i64,
        page_size: u32,
    ) -> Result<ItemPage, ApiError> {
        let method = Method::ItemList;
        let param = json!({ "pageNumber": page_number, "pageSize": page_size });
        let ok = self.call(shop, method, &param.to_string()).await?;
        ItemPage::from_data(&ok.data).map_err(|e| with_id(method, &ok, e))
    }

    /// The merchant who authorized the app for `shop` (`open.user.seller.get`).
    pub async fn seller(&self, shop: &str) -> Result<Seller, ApiError> {
        let method = Method::SellerGet;
        let ok = self.call(shop, method, "{}").await?;
        Seller::from_data(&ok.data).map_err(|e| with_id(method, &ok, e))
    }

    /// Whether the platform has `kwai_item_id` among the shop's items deleted in the last 7
    /// days (`open.item.deleted.get` takes one id; a business refusal means it has not).
    pub async fn item_deleted(&self, shop: &str, kwai_item_id: i64) -> Result<bool, ApiError> {
        let method = Method::ItemDeletedGet;
        let param = json!({ "itemId": kwai_item_id }).to_string();
        match self.call(shop, method, &param).await {
            Ok(ok) => Ok(ok.data.get().trim() != "null"),
            Err(e) if e.class == ErrorClass::Business => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// One item by id (the item list filtered by `kwaiItemId`); `None` when the platform no
    /// longer lists it. How it answers for such an item is not documented: an empty page, a
    /// business refusal, or the item with a deleted status (which the caller sees in
    /// `item_status`) are all plausible, and the first two both read as `None`.
    pub async fn item(&self, shop: &str, kwai_item_id: i64) -> Result<Option<Item>, ApiError> {
        let method = Method::ItemList;
        let param = json!({ "kwaiItemId": kwai_item_id, "pageNumber": 1, "pageSize": 10 });
        let ok = match self.call(shop, method, &param.to_string()).await {
            Ok(ok) => ok,
            Err(e) if e.class == ErrorClass::Business => {
                debug!(shop, item = kwai_item_id, error = %e, "the lookup of an item was refused: it is gone");
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let page = ItemPage::from_data(&ok.data).map_err(|e| with_id(method, &ok, e))?;
        Ok(page
            .items
            .into_iter()
            .find(|i| i.kwai_item_id == kwai_item_id))
    }
}
