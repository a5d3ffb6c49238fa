//! The refund APIs: the refund list by cursor, with its totals on the first page, and the
//! refund detail.

use serde_json::Value;

use super::{
    ListWindow, REFUND_PAGE_MAX, Served, check_window, field_of, int, list_window, next_cursor,
    parse_cursor, required, text, window_keys,
};
use crate::SimState;
use crate::codes::{
    REFUND_BAD_TYPE, REFUND_NOT_FOUND, REFUND_NOT_YOURS, REFUND_RANGE_OVER_LIMIT, RESULT_BAD_VALUE,
};
use crate::failure::Failure;
use crate::model::{Doc, ShopData};

/// Refund statuses still waiting for a refund (type 8).
fn awaiting_refund(status: i64) -> bool {
    !matches!(status, 60 | 70)
}

/// The refund list's parameters, read and checked in the platform's order.
struct RefundQuery<'a> {
    kind: i64,
    page_size: i64,
    current_page: i64,
    window: ListWindow,
    pcursor: &'a str,
    negotiate: Option<i64>,
    status: Option<i64>,
    order_id: Option<i64>,
}

impl<'a> RefundQuery<'a> {
    fn read(state: &SimState, p: &'a Value) -> Result<Self, Failure> {
        let kind = required(p, "type")?;
        if kind != 8 && kind != 9 {
            return Err(Failure::invalid(REFUND_BAD_TYPE, "type无效"));
        }
        let page_size = required(p, "pageSize")?;
        if !(1..=REFUND_PAGE_MAX).contains(&page_size) {
            return Err(Failure::invalid(RESULT_BAD_VALUE, "pageSize无效"));
        }
        let current_page = required(p, "currentPage")?;
        let window = list_window(p)?;
        check_window(
            state,
            window.span,
            state.config.refund_window_ms,
            REFUND_RANGE_OVER_LIMIT,
            false,
        )?;
        let pcursor = text(p, "pcursor")?;
        let negotiate = int(p, "negotiateStatus")?.filter(|n| *n != 0);
        let status = int(p, "status")?.filter(|n| *n != 0);
        let order_id = int(p, "orderId")?.filter(|n| *n != 0);
        Ok(Self {
            kind,
            page_size,
            current_page,
            window,
            pcursor,
            negotiate,
            status,
            order_id,
        })
    }

    /// Whether a refund shows in the list: of the type, and of the status, negotiation status
    /// and order asked for (each when asked).
    fn keeps(&self, doc: &Doc) -> bool {
        let st = field_of(doc, &["status"]).unwrap_or(0);
        (self.kind == 9 || awaiting_refund(st))
            && self.status.is_none_or(|s| s == st)
            && self
                .negotiate
                .is_none_or(|n| field_of(doc, &["negotiateStatus"]) == Some(n))
            && self
                .order_id
                .is_none_or(|o| field_of(doc, &["oid"]) == Some(o))
    }

    /// The ids on the page the cursor asks for, and whether more remain.
    fn page(&self, shop: &ShopData) -> Result<(Vec<i64>, bool), Failure> {
        if self.pcursor == "nomore" {
            return Ok((Vec::new(), false));
        }
        Ok(window_keys(
            &shop.refunds,
            self.window.field,
            self.window.span,
            parse_cursor(self.pcursor)?,
            self.window.descending,
            self.page_size as usize,
            |doc| self.keeps(doc),
        ))
    }

    /// totalSize and totalPage: every refund of the window the list keeps.
    fn totals(&self, shop: &ShopData) -> (i64, i64) {
        let (all, _) = window_keys(
            &shop.refunds,
            self.window.field,
            self.window.span,
            None,
            false,
            usize::MAX,
            |doc| self.keeps(doc),
        );
        let n = all.len() as i64;
        (n, (n + self.page_size - 1) / self.page_size)
    }
}

pub(super) fn refund_list(
    state: &SimState,
    shop: &ShopData,
    shop_index: usize,
    p: &Value,
) -> Result<Served, Failure> {
    let query = RefundQuery::read(state, p)?;
    let first = query.pcursor.trim().is_empty();
    let (ids, more) = query.page(shop)?;
    // totalPage and totalSize are valid on the first page only (reference §9.2).
    let (total_size, total_page) = if first { query.totals(shop) } else { (0, 0) };
    let docs: Vec<&str> = ids
        .iter()
        .filter_map(|id| shop.refunds.get(*id))
        .map(|d| d.json.get())
        .collect();
    let Some(next) = next_cursor(state, &shop.refunds, query.window.field, &ids, more, first)
    else {
        return Ok(Served::null_page());
    };
    let list_key = if state.config.quirks && shop_index % 2 == 1 {
        "dataList"
    } else {
        "refundOrderInfoList"
    };
    let (current_page, page_size) = (query.current_page, query.page_size);
    let (begin, end) = query.window.span;
    let data = format!(
        r#"{{"currentPage":{current_page},"pageSize":{page_size},"totalPage":{total_page},"totalSize":{total_size},"beginTime":{begin},"endTime":{end},"pcursor":"{next}","{list_key}":[{}]}}"#,
        docs.join(",")
    );
    Ok(Served {
        data,
        records: ids.len(),
        next_cursor: Some(next),
    })
}

pub(super) fn refund_detail(shops: &[ShopData], shop: usize, p: &Value) -> Result<Served, Failure> {
    let refund_id = required(p, "refundId")?;
    let Some(doc) = shops[shop].refunds.get(refund_id) else {
        let elsewhere = shops.iter().any(|s| s.refunds.get(refund_id).is_some());
        return Err(if elsewhere {
            Failure::business(REFUND_NOT_YOURS, "退款单不属于该商家")
        } else {
            Failure::business(REFUND_NOT_FOUND, "退款单不存在")
        });
    };
    let mut v = doc.value();
    let extra: Value = serde_json::from_str(doc.detail_extra.get()).unwrap_or(Value::Null);
    if let (Some(obj), Value::Object(extra)) = (v.as_object_mut(), extra) {
        obj.extend(extra);
    }
    Ok(Served::one(v.to_string()))
}
