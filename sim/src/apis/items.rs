//! The item APIs: the item list by page, and the lookups of deleted items.

use serde_json::{Value, json};

use super::{ITEM_PAGE_MAX, Served, int, required};
use crate::SimState;
use crate::clock::DAY_MS;
use crate::codes::RESULT_REJECTED;
use crate::failure::Failure;
use crate::model::{Doc, ShopData};
use crate::variants::DeletedItemLookup;

pub(super) fn item_list(state: &SimState, shop: &ShopData, p: &Value) -> Result<Served, Failure> {
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

/// `open.item.deleted.get`: one item deleted in the last 7 days, by `itemId`, in the detail
/// shape of `open.item.get`; anything else is a business error.
pub(super) fn item_deleted(
    state: &SimState,
    shop: &ShopData,
    p: &Value,
) -> Result<Served, Failure> {
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
