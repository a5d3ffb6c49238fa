//! The order APIs: the order list by cursor, with stale pages on demand, and the order detail
//! with its scripted versions and alternative spellings.

use serde_json::{Map, Value};

use super::{
    ListWindow, ORDER_PAGE_MAX, ORDER_WINDOW_MS, Served, check_window, field_of, int, list_window,
    next_cursor, parse_cursor, required, text, window_keys,
};
use crate::SimState;
use crate::codes::{REFUND_OVER_7_DAYS, RESULT_BAD_VALUE, RESULT_REJECTED};
use crate::failure::Failure;
use crate::model::{Doc, ShopData};

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

/// The order list's parameters, read and checked in the platform's order.
struct OrderQuery<'a> {
    view: i64,
    page_size: i64,
    window: ListWindow,
    cursor: &'a str,
    cps: i64,
}

impl<'a> OrderQuery<'a> {
    fn read(state: &SimState, p: &'a Value) -> Result<Self, Failure> {
        let view = required(p, "orderViewStatus")?;
        if !(0..=7).contains(&view) {
            return Err(Failure::invalid(RESULT_BAD_VALUE, "orderViewStatus无效"));
        }
        let page_size = required(p, "pageSize")?;
        if !(1..=ORDER_PAGE_MAX).contains(&page_size) {
            return Err(Failure::invalid(RESULT_BAD_VALUE, "pageSize无效"));
        }
        let window = list_window(p)?;
        check_window(
            state,
            window.span,
            ORDER_WINDOW_MS,
            REFUND_OVER_7_DAYS,
            true,
        )?;
        let cursor = text(p, "cursor")?;
        let cps = int(p, "cpsType")?.unwrap_or(0);
        Ok(Self {
            view,
            page_size,
            window,
            cursor,
            cps,
        })
    }

    /// Whether an order shows in the list: a status of the view, the asked cpsType (0: any).
    fn keeps(&self, doc: &Doc) -> bool {
        let status_ok = view_statuses(self.view).is_none_or(|s| {
            field_of(doc, &["orderBaseInfo", "status"]).is_some_and(|st| s.contains(&st))
        });
        let cps_ok =
            self.cps == 0 || field_of(doc, &["orderBaseInfo", "cpsType"]) == Some(self.cps);
        status_ok && cps_ok
    }

    /// The ids on the page the cursor asks for, and whether more remain.
    fn page(&self, shop: &ShopData) -> Result<(Vec<i64>, bool), Failure> {
        if self.cursor == "nomore" {
            return Ok((Vec::new(), false));
        }
        Ok(window_keys(
            &shop.orders,
            self.window.field,
            self.window.span,
            parse_cursor(self.cursor)?,
            self.window.descending,
            self.page_size as usize,
            |doc| self.keeps(doc),
        ))
    }
}

pub(super) fn order_list(state: &SimState, shop: &ShopData, p: &Value) -> Result<Served, Failure> {
    let query = OrderQuery::read(state, p)?;
    let (ids, more) = query.page(shop)?;
    let served = served_orders(state, shop, &ids)?;
    let first = query.cursor.trim().is_empty();
    let Some(next) = next_cursor(state, &shop.orders, query.window.field, &ids, more, first) else {
        return Ok(Served::null_page());
    };
    let (page_size, (begin, end)) = (query.page_size, query.window.span);
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

/// The page's orders as served: an order's older version if one waits (`POST /__sim/stale`),
/// else the current one, in the shape the platform's variants give it.
fn served_orders(state: &SimState, shop: &ShopData, ids: &[i64]) -> Result<Vec<String>, Failure> {
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
    Ok(ids
        .iter()
        .zip(docs)
        .map(|(id, current)| {
            let doc = stale
                .remove(id)
                .map(|d| d.json.get().to_string())
                .unwrap_or_else(|| current.to_string());
            variants.shaped_order(&doc)
        })
        .collect())
}

/// The detail view: the list document plus the detail-only fields; some answers use the
/// alternative spellings the Go SDK reads (reference §8.6).
pub(super) fn order_detail(
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
