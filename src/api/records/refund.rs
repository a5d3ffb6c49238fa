//! Refunds (after-sales) from `open.seller.order.refund.pcursor.list` and
//! `open.seller.order.refund.detail` (reference §9): a flat object in both, the detail adding a
//! few fields.

use serde_json::value::RawValue;

use super::fields::{self, Fields, Node};
use super::{NO_MORE, RecordError, page_cursor, page_records, page_value};

const KIND: &str = "refund";
const PAGE: &str = "refund page";

/// One refund. Money is fen, times are epoch ms; the `Option` timestamps are `None` when 0
/// (not reached). The after-sale state is the pair (`status`, `negotiate_status`).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Refund {
    pub refund_id: i64,
    /// The order (`oid`) refunded; 0 when the platform did not say.
    pub oid: i64,
    pub item_id: Option<i64>,
    pub sku_id: Option<i64>,
    pub rel_item_id: Option<i64>,
    pub rel_sku_id: Option<i64>,
    pub sku_nick: Option<String>,
    /// The long Kuaishou user id (`sellerId` or `seller_id`), a namespace of its own (§13.2).
    pub seller_id: Option<i64>,
    /// Deprecated by the platform.
    pub buyer_id: Option<i64>,
    /// Detail only.
    pub buyer_open_id: Option<String>,
    /// 1 return + refund, 10 refund only, 3 exchange (4 re-send, 5 repair).
    pub handling_way: Option<i64>,
    /// Reference §9.3; 60 succeeded and 70 failed/closed are terminal.
    pub status: i64,
    /// 1 awaiting merchant, 2 merchant agreed, 3 merchant rejected.
    pub negotiate_status: Option<i64>,
    /// 1 buyer-initiated, 2 seller-initiated.
    pub refund_type: Option<i64>,
    /// Everything refunded to the buyer, platform subsidies included.
    pub refund_fee: i64,
    pub refund_reason: Option<i64>,
    pub refund_reason_desc: Option<String>,
    pub refund_desc: Option<String>,
    /// 1 goods not received, 2 received.
    pub receipt_status: Option<i64>,
    /// Detail only: 0 normal, 1 price protection.
    pub special_refund_type: Option<i64>,
    pub create_time: i64,
    /// The version used for upserts.
    pub update_time: i64,
    pub submit_time: Option<i64>,
    pub negotiate_update_time: Option<i64>,
    /// When the refund succeeded or failed.
    pub end_time: Option<i64>,
    /// The merchant's deadline.
    pub expire_time: Option<i64>,
    pub logistics_id: Option<i64>,
    /// Detail only: `logisticsInfo.expressNo` of the return parcel.
    pub express_no: Option<String>,
    /// The element's JSON, byte for byte.
    pub raw: String,
}

impl Refund {
    /// Reads one `refundOrderInfoList` element or an `open.seller.order.refund.detail` `data`.
    pub fn from_raw(raw: &RawValue) -> Result<Refund, RecordError> {
        let value = fields::parse(raw).map_err(|r| RecordError::new(KIND, None, r))?;
        Refund::from_node(raw, &value)
    }

    /// Reads one list element: `raw` is its JSON, `value` the same read.
    fn from_node(raw: &RawValue, value: &Node) -> Result<Refund, RecordError> {
        let no_id = |r: String| RecordError::new(KIND, None, r);
        let f = Fields::record(value).map_err(no_id)?;
        let refund_id = f.id("refundId").map_err(no_id)?;
        let mut refund = Refund {
            refund_id,
            raw: raw.get().to_string(),
            ..Refund::default()
        };
        refund
            .read_keys(f)
            .map_err(|r| RecordError::new(KIND, Some(refund_id), r))?;
        refund.read_descriptive(f);
        Ok(refund)
    }

    /// The key fields. `oid` counts as one: a refund tied to an unreadable order would be
    /// stored against the wrong order (or none).
    fn read_keys(&mut self, f: Fields) -> Result<(), String> {
        self.oid = f.key_int("oid")?.unwrap_or(0);
        self.status = f.key_int("status")?.unwrap_or(0);
        self.create_time = f.key_int("createTime")?.unwrap_or(0);
        self.update_time = f.key_int("updateTime")?.unwrap_or(0);
        Ok(())
    }

    /// Descriptive fields (wrong types degrade to `None`/0).
    fn read_descriptive(&mut self, f: Fields) {
        self.item_id = f.nonzero("itemId");
        self.sku_id = f.nonzero("skuId");
        self.rel_item_id = f.nonzero("relItemId");
        self.rel_sku_id = f.nonzero("relSkuId");
        self.sku_nick = f.text("skuNick");
        self.seller_id = ["sellerId", "seller_id"].iter().find_map(|n| f.nonzero(n));
        self.buyer_id = f.nonzero("buyerId");
        self.buyer_open_id = f.text("buyerOpenId");
        self.handling_way = f.int("handlingWay");
        self.negotiate_status = f.int("negotiateStatus");
        self.refund_type = f.int("refundType");
        self.refund_fee = f.int_or_zero("refundFee");
        self.refund_reason = f.int("refundReason");
        self.refund_reason_desc = f.text("refundReasonDesc");
        self.refund_desc = f.text("refundDesc");
        self.receipt_status = f.int("receiptStatus");
        self.special_refund_type = f.int("specialRefundType");
        self.submit_time = f.nonzero("submitTime");
        self.negotiate_update_time = f.nonzero("negotiateUpdateTime");
        self.end_time = f.nonzero("endTime");
        self.expire_time = f.nonzero("expireTime");
        self.logistics_id = f.nonzero("logisticsId");
        self.express_no = f.block("logisticsInfo").text("expressNo");
    }
}

/// One page of `open.seller.order.refund.pcursor.list`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct RefundPage {
    /// The next cursor, `"nomore"` at the end; `""` when absent. Opaque: never parsed.
    pub pcursor: String,
    pub current_page: Option<i64>,
    pub page_size: Option<i64>,
    /// Valid on the first page only.
    pub total_page: Option<i64>,
    pub total_size: Option<i64>,
    pub refunds: Vec<Refund>,
    /// Elements that could not be read (quarantined by the poller).
    pub rejected: Vec<super::Rejected>,
}

impl RefundPage {
    /// Reads the `data` of the refund list, whose list is `refundOrderInfoList` (or `dataList`,
    /// the Go SDK's spelling). `null` is an empty page; an element that cannot be read is set aside
    /// in `rejected`.
    pub fn from_data(data: &RawValue) -> Result<RefundPage, RecordError> {
        let Some(page) = page_value(PAGE, data)? else {
            return Ok(RefundPage::default());
        };
        let f = Fields::of(Some(&page));
        let (refunds, rejected) = page_records(
            PAGE,
            f,
            &["refundOrderInfoList", "dataList"],
            Refund::from_node,
        )?;
        Ok(RefundPage {
            pcursor: page_cursor(PAGE, f, "pcursor")?,
            current_page: f.int("currentPage"),
            page_size: f.int("pageSize"),
            total_page: f.int("totalPage"),
            total_size: f.int("totalSize"),
            refunds,
            rejected,
        })
    }

    /// Whether this is the last page (`pcursor == "nomore"`).
    pub fn is_last(&self) -> bool {
        self.pcursor == NO_MORE
    }
}

#[cfg(test)]
mod tests;
