//! The five read APIs of the simulated platform: windows and page limits with the platform's
//! codes, cursor paging that ends in `nomore`, the detail views, and the item list by page.

use serde_json::{Value, json};

use super::SimState;
use super::codes::*;
use super::failure::Failure;
use super::model::{Doc, DocSet, ShopData, TimeField};
use super::variants::{BadWindowCodes, EmptyWindow, PlatformVariants};
use crate::clock::DAY_MS;
use crate::methods::Method;

mod items;
mod orders;
mod refunds;

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

    /// A first page answered with `data: null` (an empty window, as a variant answers it).
    fn null_page() -> Self {
        Self {
            data: "null".into(),
            records: 0,
            next_cursor: Some(String::new()),
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
        Method::OrderCursorList => orders::order_list(state, data, p),
        Method::OrderDetail => orders::order_detail(state, &shops, shop, p),
        Method::RefundList => refunds::refund_list(state, data, shop, p),
        Method::RefundDetail => refunds::refund_detail(&shops, shop, p),
        Method::ItemList => items::item_list(state, data, p),
        Method::ItemDeletedGet => items::item_deleted(state, data, p),
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

/// The window of a cursor list: which time it runs over, in which direction, from when to when.
struct ListWindow {
    field: TimeField,
    descending: bool,
    span: (i64, i64),
}

/// `queryType`, `sort`, `beginTime` and `endTime`, read in that order, as both lists read them.
fn list_window(p: &Value) -> Result<ListWindow, Failure> {
    let field = TimeField::from_query_type(int(p, "queryType")?.unwrap_or(1))
        .ok_or_else(|| Failure::invalid(RESULT_BAD_VALUE, "queryType无效"))?;
    let descending = int(p, "sort")?.unwrap_or(1) != 2;
    let span = (required(p, "beginTime")?, required(p, "endTime")?);
    Ok(ListWindow {
        field,
        descending,
        span,
    })
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

/// The cursor a list page hands back: its last record's `<time>_<id>` when more remain; on an
/// empty first page, what the platform answers there; else `nomore`. `None` when the page is
/// answered with `data: null`.
fn next_cursor(
    state: &SimState,
    set: &DocSet,
    field: TimeField,
    ids: &[i64],
    more: bool,
    first: bool,
) -> Option<String> {
    match (more, ids.last().and_then(|id| set.get(*id))) {
        (true, Some(last)) => {
            let t = if field == TimeField::Create {
                last.create_time
            } else {
                last.update_time
            };
            Some(format!("{t}_{}", last.id))
        }
        _ if ids.is_empty() && first => {
            let (next, null) = empty_window(state);
            (!null).then(|| next.to_string())
        }
        _ => Some("nomore".to_string()),
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
