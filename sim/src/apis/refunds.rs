//! The refund APIs: the refund list by cursor, with its totals on the first page, and the
//! refund detail.

use serde_json::Value;

use super::{
    REFUND_PAGE_MAX, Served, check_window, empty_window, field_of, int, parse_cursor, required,
    text, window_keys,
};
use crate::SimState;
use crate::codes::{
    REFUND_BAD_TYPE, REFUND_NOT_FOUND, REFUND_NOT_YOURS, REFUND_RANGE_OVER_LIMIT, RESULT_BAD_VALUE,
};
use crate::failure::Failure;
use crate::model::{Doc, ShopData, TimeField};

/// Refund statuses still waiting for a refund (type 8).
fn awaiting_refund(status: i64) -> bool {
    !matches!(status, 60 | 70)
}

pub(super) fn refund_list(
    state: &SimState,
    shop: &ShopData,
    shop_index: usize,
    p: &Value,
) -> Result<Served, Failure> {
    let kind = required(p, "type")?;
    if kind != 8 && kind != 9 {
        return Err(Failure::invalid(REFUND_BAD_TYPE, "type无效"));
    }
    let page_size = required(p, "pageSize")?;
    if !(1..=REFUND_PAGE_MAX).contains(&page_size) {
        return Err(Failure::invalid(RESULT_BAD_VALUE, "pageSize无效"));
    }
    let current_page = required(p, "currentPage")?;
    let field = TimeField::from_query_type(int(p, "queryType")?.unwrap_or(1))
        .ok_or_else(|| Failure::invalid(RESULT_BAD_VALUE, "queryType无效"))?;
    let descending = int(p, "sort")?.unwrap_or(1) != 2;
    let (begin, end) = (required(p, "beginTime")?, required(p, "endTime")?);
    check_window(
        state,
        (begin, end),
        state.config.refund_window_ms,
        REFUND_RANGE_OVER_LIMIT,
        false,
    )?;
    let pcursor = text(p, "pcursor")?;
    let negotiate = int(p, "negotiateStatus")?.filter(|n| *n != 0);
    let status = int(p, "status")?.filter(|n| *n != 0);
    let order_id = int(p, "orderId")?.filter(|n| *n != 0);
    let keep = |doc: &Doc| {
        let st = field_of(doc, &["status"]).unwrap_or(0);
        (kind == 9 || awaiting_refund(st))
            && status.is_none_or(|s| s == st)
            && negotiate.is_none_or(|n| field_of(doc, &["negotiateStatus"]) == Some(n))
            && order_id.is_none_or(|o| field_of(doc, &["oid"]) == Some(o))
    };
    let first = pcursor.trim().is_empty();
    let (ids, more) = if pcursor == "nomore" {
        (Vec::new(), false)
    } else {
        window_keys(
            &shop.refunds,
            field,
            (begin, end),
            parse_cursor(pcursor)?,
            descending,
            page_size as usize,
            keep,
        )
    };
    // totalPage and totalSize are valid on the first page only (reference §9.2).
    let (total_size, total_page) = if first {
        let (all, _) = window_keys(
            &shop.refunds,
            field,
            (begin, end),
            None,
            false,
            usize::MAX,
            keep,
        );
        let n = all.len() as i64;
        (n, (n + page_size - 1) / page_size)
    } else {
        (0, 0)
    };
    let docs: Vec<&str> = ids
        .iter()
        .filter_map(|id| shop.refunds.get(*id))
        .map(|d| d.json.get())
        .collect();
    let next = match (more, ids.last().and_then(|id| shop.refunds.get(*id))) {
        (true, Some(last)) => {
            let t = if field == TimeField::Create {
                last.create_time
            } else {
                last.update_time
            };
            format!("{t}_{}", last.id)
        }
        _ if ids.is_empty() && first => {
            let (next, null) = empty_window(state);
            if null {
                return Ok(Served {
                    data: "null".into(),
                    records: 0,
                    next_cursor: Some(String::new()),
                });
            }
            next.to_string()
        }
        _ => "nomore".to_string(),
    };
    let list_key = if state.config.quirks && shop_index % 2 == 1 {
        "dataList"
    } else {
        "refundOrderInfoList"
    };
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
