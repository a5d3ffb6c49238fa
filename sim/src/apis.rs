//! The five read APIs of the simulated platform: windows and page limits with the platform's
//! codes, cursor paging that ends in `nomore`, the detail views, and the item list by page.

use serde_json::{Map, Value, json};

use super::SimState;
use super::codes::*;
use super::failure::Failure;
use super::model::{Doc, DocSet, ShopData, TimeField};
use super::variants::{BadWindowCodes, DeletedItemLookup, EmptyWindow, PlatformVariants};
use crate::clock::DAY_MS;
use crate::methods::Method;

/// The platform's history horizon.
pub const HORIZON_MS: i64 = 90 * DAY_MS;
/// The order list's maximum window.
pub const ORDER_WINDOW_MS: i64 = 7 * DAY_MS;
pub const ORDER_PAGE_MAX: i64 = 50;
pub const REFUND_PAGE_MAX: i64 = 100;
pub const ITEM_PAGE_MAX: i64 = 100;

/// What one API call served: the `data` JSON, how many records it holds, and for the cursor
/// lists the cursor it handed back (for the call log: tests check where a client resumes).
#[derive(Debug)]
pub struct Served {
    pub data: String,
    pub records: usize,
    pub next_cursor: Option<String>,
}

impl Served {
    fn one(data: String) -> Self {
        Self {
            data,
            records: 1,
            next_cursor: None,
        }
    }
}

/// Runs one API for a shop.
pub fn dispatch(
    state: &SimState,
    method: Method,
    shop: usize,
    p: &Value,
) -> Result<Served, Failure> {
    let shops = state
        .shops
        .read()
        .map_err(|_| Failure::business(500, "busy"))?;
    let data = shops
        .get(shop)
        .ok_or_else(|| Failure::business(RESULT_NO_MAIN_ACCOUNT, "主账号不存在"))?;
    match method {
        Method::OrderCursorList => order_list(state, data, p),
        Method::OrderDetail => order_detail(state, &shops, shop, p),
        Method::RefundList => refund_list(state, data, shop, p),
        Method::RefundDetail => refund_detail(&shops, shop, p),
        Method::ItemList => item_list(state, data, p),
        Method::ItemDeletedGet => item_deleted(state, data, p),
        Method::SellerGet => Ok(Served::one(seller(data))),
    }
}

/// `open.user.seller.get`: the authorizing merchant (reference; declaration
/// `GetSellerInfoResponseParam`): name, avatars, the seller id and the open id.
fn seller(shop: &ShopData) -> String {
    let id = &shop.identity;
    json!({
        "name": id.nick,
        "sex": "M",
        "head": format!("https://p1.a.yximgs.com/uhead/{}.jpg", id.seller_id),
        "bigHead": format!("https://p1.a.yximgs.com/uhead/{}_big.jpg", id.seller_id),
        "sellerId": id.seller_id,
        "openId": id.open_id,
    })
    .to_string()
}

/// `open.item.deleted.get`: one item deleted in the last 7 days, by `itemId`, in the detail
/// shape of `open.item.get`; anything else is a business error.
fn item_deleted(state: &SimState, shop: &ShopData, p: &Value) -> Result<Served, Failure> {
    let id = required(p, "itemId")?;
    let now = state.clock.now_ms();
    let Some((doc, deleted_at)) = shop
        .deleted_items
        .get(&id)
        .filter(|(_, at)| now - *at <= 7 * DAY_MS)
    else {
        return Err(item_gone());
    };
    let v = doc.value();
    let pick = |k: &str| v.get(k).cloned().unwrap_or(Value::Null);
    Ok(Served::one(
        json!({
            "itemId": id,
            "relItemId": pick("relItemId"),
            "title": pick("title"),
            "categoryId": pick("categoryId"),
            "categoryName": pick("categoryName"),
            "details": pick("details"),
            "imageUrls": pick("imageUrls"),
            "linkUrl": pick("linkUrl"),
            "auditStatus": pick("auditStatus"),
            "createdTime": pick("createTime"),
            "updateTime": deleted_at,
        })
        .to_string(),
    ))
}

/// What a lookup of an item the shop does not have answers.
fn item_gone() -> Failure {
    Failure::business(RESULT_REJECTED, "商品不存在或已删除")
}

/// An optional integer parameter, read strictly by its JSON type: absent or `null` is `None`;
/// a string (`"50"`), a fraction (`1.5`) or anything else is refused. The platform's declared
/// types are numbers, and a client that sends them as strings must find out here, not live.
fn int(p: &Value, key: &str) -> Result<Option<i64>, Failure> {
    match p.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .map(Some)
            .ok_or_else(|| Failure::invalid(RESULT_BAD_VALUE, format!("{key}无效"))),
    }
}

fn required(p: &Value, key: &str) -> Result<i64, Failure> {
    int(p, key)?.ok_or_else(|| Failure::invalid(RESULT_BAD_VALUE, format!("{key}无效")))
}

/// A required string parameter (a cursor): a number or anything else is refused.
fn text<'a>(p: &'a Value, key: &str) -> Result<&'a str, Failure> {
    p.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| Failure::invalid(RESULT_BAD_VALUE, format!("{key}无效")))
}

/// begin < end, within `max_ms`, not older than the horizon. The refund list answers with the
/// codes of 返回码说明 (300003/300004/300005/300019), the only published ones; the order list
/// with the same, or (a variant) with `807000`/`2001` `endTime无效` as seen in public code.
fn check_window(
    state: &SimState,
    (begin, end): (i64, i64),
    max_ms: i64,
    over_code: i64,
    order_list: bool,
) -> Result<(), Failure> {
    let business = order_list && state.config.variants.bad_window == BadWindowCodes::Business2001;
    let refuse = |code: i64, message: &str| {
        if business {
            Failure::invalid(RESULT_BAD_VALUE, "endTime无效")
        } else {
            Failure::invalid(code, message)
        }
    };
    if begin >= end {
        return Err(refuse(REFUND_END_BEFORE_BEGIN, "结束时间必须大于开始时间"));
    }
    if end - begin > max_ms {
        return Err(refuse(over_code, "时间范围超过限制"));
    }
    if begin < state.clock.now_ms() - HORIZON_MS {
        return Err(refuse(REFUND_OVER_90_DAYS, "只能查询90天内的数据"));
    }
    Ok(())
}

/// The cursor and `data` of a window's first page when it holds nothing, as the platform may
/// answer it: `nomore`, an empty cursor, or `data: null`.
fn empty_window(state: &SimState) -> (&'static str, bool) {
    match state.config.variants.empty_window {
        EmptyWindow::Nomore => ("nomore", false),
        EmptyWindow::EmptyCursor => ("", false),
        EmptyWindow::NullData => ("", true),
    }
}

/// A cursor `<time>_<id>` (reference §8.1); `""` is the start.
fn parse_cursor(cursor: &str) -> Result<Option<(i64, i64)>, Failure> {
    if cursor.trim().is_empty() {
        return Ok(None);
    }
    let bad = || Failure::invalid(RESULT_BAD_VALUE, "cursor无效");
    let (t, id) = cursor.trim().split_once('_').ok_or_else(bad)?;
    Ok(Some((
        t.parse().map_err(|_| bad())?,
        id.parse().map_err(|_| bad())?,
    )))
}

/// Up to `limit` keys of the window `[begin, end]` after `after`, in the requested direction,
/// that `keep` accepts; plus whether more remain.
fn window_keys(
    set: &DocSet,
    field: TimeField,
    (begin, end): (i64, i64),
    after: Option<(i64, i64)>,
    descending: bool,
    limit: usize,
    mut keep: impl FnMut(&Doc) -> bool,
) -> (Vec<i64>, bool) {
    use std::ops::Bound::{Excluded, Included};
    let index = set.time_index(field);
    let lo = (begin, i64::MIN);
    let hi = (end, i64::MAX);
    let keys: Box<dyn Iterator<Item = &(i64, i64)>> = match (descending, after) {
        (false, None) => Box::new(index.range((Included(lo), Included(hi)))),
        (false, Some(a)) => Box::new(index.range((Excluded(a.max(lo)), Included(hi)))),
        (true, None) => Box::new(index.range((Included(lo), Included(hi))).rev()),
        (true, Some(a)) => Box::new(index.range((Included(lo), Excluded(a.min(hi)))).rev()),
    };
    let mut out = Vec::new();
    for &(_, id) in keys {
        let Some(doc) = set.get(id) else { continue };
        if !keep(doc) {
            continue;
        }
        if out.len() == limit {
            return (out, true);
        }
        out.push(id);
    }
    (out, false)
}

/// An integer field of a stored document (the simulator's own documents hold numbers).
fn field_of(doc: &Doc, path: &[&str]) -> Option<i64> {
    let mut v = doc.value();
    for key in path {
        v = v.get(key)?.clone();
    }
    v.as_i64()
}

/// orderViewStatus → the order statuses it shows (reference §8.1).
fn view_statuses(view: i64) -> Option<&'static [i64]> {
    match view {
        2 => Some(&[10]),
        3 => Some(&[30]),
        4 => Some(&[40]),
        5 => Some(&[50]),
        6 => Some(&[70]),
        7 => Some(&[80]),
        _ => None,
    }
}

fn order_list(state: &SimState, shop: &ShopData, p: &Value) -> Result<Served, Failure> {
    let view = required(p, "orderViewStatus")?;
    if !(0..=7).contains(&view) {
        return Err(Failure::invalid(RESULT_BAD_VALUE, "orderViewStatus无效"));
    }
    let page_size = required(p, "pageSize")?;
    if !(1..=ORDER_PAGE_MAX).contains(&page_size) {
        return Err(Failure::invalid(RESULT_BAD_VALUE, "pageSize无效"));
    }
    let field = TimeField::from_query_type(int(p, "queryType")?.unwrap_or(1))
        .ok_or_else(|| Failure::invalid(RESULT_BAD_VALUE, "queryType无效"))?;
    let descending = int(p, "sort")?.unwrap_or(1) != 2;
    let (begin, end) = (required(p, "beginTime")?, required(p, "endTime")?);
    check_window(
        state,
        (begin, end),
        ORDER_WINDOW_MS,
        REFUND_OVER_7_DAYS,
        true,
    )?;
    let cursor = text(p, "cursor")?;
    let cps = int(p, "cpsType")?.unwrap_or(0);
    let (ids, more) = if cursor == "nomore" {
        (Vec::new(), false)
    } else {
        let statuses = view_statuses(view);
        window_keys(
            &shop.orders,
            field,
            (begin, end),
            parse_cursor(cursor)?,
            descending,
            page_size as usize,
            |doc| {
                let status_ok = statuses.is_none_or(|s| {
                    field_of(doc, &["orderBaseInfo", "status"]).is_some_and(|st| s.contains(&st))
                });
                let cps_ok = cps == 0 || field_of(doc, &["orderBaseInfo", "cpsType"]) == Some(cps);
                status_ok && cps_ok
            },
        )
    };
    let mut stale = state
        .stale_orders
        .lock()
        .map_err(|_| Failure::business(500, "busy"))?;
    let docs: Vec<&str> = ids
        .iter()
        .filter_map(|id| shop.orders.get(*id))
        .map(|d| d.json.get())
        .collect();
    let variants = state.config.variants;
    let served: Vec<String> = ids
        .iter()
        .zip(docs)
        .map(|(id, current)| {
            let doc = stale
                .remove(id)
                .map(|d| d.json.get().to_string())
                .unwrap_or_else(|| current.to_string());
            variants.shaped_order(&doc)
        })
        .collect();
    let next = match (more, ids.last().and_then(|id| shop.orders.get(*id))) {
        (true, Some(last)) => {
            let t = if field == TimeField::Create {
                last.create_time
            } else {
                last.update_time
            };
            format!("{t}_{}", last.id)
        }
        _ if ids.is_empty() && cursor.trim().is_empty() => {
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
    let data = format!(
        r#"{{"pageSize":{page_size},"beginTime":{begin},"endTime":{end},"cursor":"{next}","orderList":[{}]}}"#,
        served.join(",")
    );
    Ok(Served {
        data,
        records: ids.len(),
        next_cursor: Some(next),
    })
}

/// The detail view: the list document plus the detail-only fields; some answers use the
/// alternative spellings the Go SDK reads (reference §8.6).
fn order_detail(
    state: &SimState,
    shops: &[ShopData],
    shop: usize,
    p: &Value,
) -> Result<Served, Failure> {
    let oid = required(p, "oid")?;
    let Some(current) = shops[shop].orders.get(oid) else {
        return Err(Failure::business(RESULT_REJECTED, "order operation reject"));
    };
    let scripted = state
        .detail_script
        .lock()
        .ok()
        .and_then(|mut s| s.get_mut(&oid).and_then(|q| q.pop_front()));
    let doc = scripted.as_ref().unwrap_or(current);
    let mut v = doc.value();
    let extra: Value = serde_json::from_str(doc.detail_extra.get()).unwrap_or(Value::Null);
    if let (Some(obj), Value::Object(extra)) = (v.as_object_mut(), extra) {
        for (k, val) in extra {
            if k == "orderBaseInfoExtra" {
                if let (Some(base), Value::Object(more)) = (
                    obj.get_mut("orderBaseInfo").and_then(Value::as_object_mut),
                    val,
                ) {
                    base.extend(more);
                }
            } else {
                obj.insert(k, val);
            }
        }
        if state.config.quirks && oid % 2 == 1 {
            rename(obj, "orderRefundList", "orderDetailRefundList");
            if let Some(base) = obj.get_mut("orderBaseInfo").and_then(Value::as_object_mut) {
                rename(base, "orderSellerRoleInfo", "orderlSellerRoleInfo");
            }
        }
    }
    state.config.variants.shape_order(&mut v);
    Ok(Served::one(v.to_string()))
}

fn rename(obj: &mut Map<String, Value>, from: &str, to: &str) {
    if let Some(v) = obj.remove(from) {
        obj.insert(to.to_string(), v);
    }
}

/// Refund statuses still waiting for a refund (type 8).
fn awaiting_refund(status: i64) -> bool {
    !matches!(status, 60 | 70)
}

fn refund_list(
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

fn refund_detail(shops: &[ShopData], shop: usize, p: &Value) -> Result<Served, Failure> {
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

fn item_list(state: &SimState, shop: &ShopData, p: &Value) -> Result<Served, Failure> {
    // pageSize: 10–100; over 100 or absent means 100 (reference §10).
    let page_size = match int(p, "pageSize")? {
        Some(n) if (1..=ITEM_PAGE_MAX).contains(&n) => n.max(10),
        _ => ITEM_PAGE_MAX,
    };
    let page = int(p, "pageNumber")?.unwrap_or(1).max(1);
    let only_on_shelf = int(p, "onOfflineStatus")? == Some(1);
    let single = int(p, "kwaiItemId")?.filter(|n| *n != 0);
    let rel = int(p, "relItemId")?.filter(|n| *n != 0);
    let matches = |doc: &Doc| {
        let v = doc.value();
        (!only_on_shelf || v.get("shelfStatus").and_then(Value::as_i64) == Some(1))
            && single.is_none_or(|id| doc.id == id)
            && rel.is_none_or(|r| v.get("relItemId").and_then(Value::as_i64) == Some(r))
    };
    if let Some((doc, _)) = single.and_then(|id| shop.deleted_items.get(&id)) {
        return deleted_item_lookup(state, doc);
    }
    let all: Vec<&Doc> = shop.items.values().filter(|d| matches(d)).collect();
    let total = all.len() as i64;
    let total_page = (total + page_size - 1) / page_size;
    let start = ((page - 1) * page_size) as usize;
    let docs: Vec<&str> = all
        .iter()
        .skip(start)
        .take(page_size as usize)
        .map(|d| d.json.get())
        .collect();
    let data = format!(
        r#"{{"totalItemCount":{total},"currentPageItemCount":{},"currentPageNumber":{page},"totalPage":{total_page},"items":[{}]}}"#,
        docs.len(),
        docs.join(",")
    );
    Ok(Served {
        records: docs.len(),
        data,
        next_cursor: None,
    })
}

/// A lookup of a deleted item by `kwaiItemId`, as the platform may answer it: an empty page, a
/// business error, or the item with `itemStatus` 2 (deleted by the seller) or 3 (by the platform).
fn deleted_item_lookup(state: &SimState, doc: &Doc) -> Result<Served, Failure> {
    let status = match state.config.variants.deleted_item {
        DeletedItemLookup::Absent => None,
        DeletedItemLookup::BusinessError => return Err(item_gone()),
        DeletedItemLookup::DeletedBySeller => Some(2),
        DeletedItemLookup::DeletedByPlatform => Some(3),
    };
    let items = match status {
        Some(status) => {
            let mut v = doc.value();
            v["itemStatus"] = json!(status);
            format!("[{v}]")
        }
        None => "[]".into(),
    };
    let n = usize::from(status.is_some());
    Ok(Served {
        data: format!(
            r#"{{"totalItemCount":{n},"currentPageItemCount":{n},"currentPageNumber":1,"totalPage":{n},"items":{items}}}"#
        ),
        records: n,
        next_cursor: None,
    })
}

/// The truth about one shop as the platform holds it now (`GET /__sim/truth`), as JSON text:
/// the stored documents are joined as they are, never parsed, so the simulator's lock is held
/// only for a copy (parsing 100,000 documents under it would stall every API call behind it).
pub fn shop_truth(index: usize, shop: &ShopData, variants: &PlatformVariants) -> String {
    let mut orders: Vec<&Doc> = shop.orders.iter().collect();
    orders.sort_by_key(|d| d.id);
    let mut refunds: Vec<&Doc> = shop.refunds.iter().collect();
    refunds.sort_by_key(|d| d.id);
    let join = |docs: &[&Doc]| {
        docs.iter()
            .map(|d| d.json.get())
            .collect::<Vec<_>>()
            .join(",")
    };
    // Orders as the platform serves them (the variants may reshape their packages).
    let orders = if variants.reshapes_orders() {
        orders
            .iter()
            .map(|d| variants.shaped_order(d.json.get()))
            .collect::<Vec<_>>()
            .join(",")
    } else {
        join(&orders)
    };
    let items: Vec<&Doc> = shop.items.values().collect();
    format!(
        r#"{{"index":{index},"open_id":{},"seller_id":{},"orders":[{}],"refunds":[{}],"items":[{}]}}"#,
        json!(shop.identity.open_id),
        json!(shop.identity.seller_id),
        orders,
        join(&refunds),
        join(&items),
    )
}
