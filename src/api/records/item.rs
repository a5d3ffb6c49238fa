//! Items and their SKUs from `open.item.list.get` (reference §10), scanned in full by page
//! number since the API has no updated-since filter.

use serde_json::value::RawValue;

use super::fields::{self, Element, Fields, Node};
use super::{RecordError, page_records, page_value};

const KIND: &str = "item";
const SKU: &str = "sku";
const PAGE: &str = "item page";

/// One item (product). Money is fen, times are epoch ms.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Item {
    pub kwai_item_id: i64,
    /// The seller's (or ISV's) own id for the item.
    pub rel_item_id: Option<i64>,
    pub user_id: Option<i64>,
    pub title: Option<String>,
    pub category_id: Option<i64>,
    pub category_name: Option<String>,
    pub price: i64,
    /// Sales count.
    pub volume: Option<i64>,
    /// 1 normal, 2 deleted by the seller, 3 deleted by the system.
    pub item_status: Option<i64>,
    /// 0 off shelf, 1 on shelf.
    pub shelf_status: Option<i64>,
    /// 0 pending, 1 needs changes, 2 approved, 3 rejected.
    pub audit_status: Option<i64>,
    /// 1 self-built, 2 闪电购.
    pub item_type: Option<i64>,
    /// 0 created in the shop, 1 via the OpenAPI.
    pub from_type: Option<i64>,
    pub main_image_url: Option<String>,
    pub link_url: Option<String>,
    pub create_time: i64,
    /// The version used for upserts.
    pub update_time: i64,
    /// `skuList[]`, in the platform's order.
    pub skus: Vec<Sku>,
    /// The element's JSON, byte for byte.
    pub raw: String,
}

/// One SKU of an item.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Sku {
    pub kwai_sku_id: i64,
    /// The SKU's own `kwaiItemId`, else its parent item's.
    pub kwai_item_id: i64,
    pub rel_sku_id: Option<i64>,
    pub sku_nick: Option<String>,
    pub specification: Option<String>,
    pub image_url: Option<String>,
    pub sku_stock: i64,
    pub reserve_stock: Option<i64>,
    pub sku_sale_price: i64,
    /// 0 or 1.
    pub is_valid: Option<i64>,
    pub create_time: Option<i64>,
    pub update_time: Option<i64>,
    /// That `skuList` element's JSON, byte for byte.
    pub raw: String,
}

impl Item {
    /// Reads one `items` element (or the single-item `data` of a lookup by id).
    pub fn from_raw(raw: &RawValue) -> Result<Item, RecordError> {
        let value = fields::parse(raw).map_err(|r| RecordError::new(KIND, None, r))?;
        Item::from_node(raw, &value)
    }

    /// Reads one `items` element: `raw` is its JSON, `value` the same read.
    fn from_node(raw: &RawValue, value: &Node) -> Result<Item, RecordError> {
        let no_id = |r: String| RecordError::new(KIND, None, r);
        let f = Fields::record(value).map_err(no_id)?;
        let kwai_item_id = f.id("kwaiItemId").map_err(no_id)?;
        let with_id = |r: String| RecordError::new(KIND, Some(kwai_item_id), r);
        let mut item = Item {
            kwai_item_id,
            raw: raw.get().to_string(),
            ..Item::default()
        };
        item.read_keys(f).map_err(with_id)?;
        item.rel_item_id = f.nonzero("relItemId");
        item.user_id = f.nonzero("userId");
        item.title = f.text("title");
        item.category_id = f.nonzero("categoryId");
        item.category_name = f.text("categoryName");
        item.price = f.int_or_zero("price");
        item.volume = f.int("volume");
        item.shelf_status = f.int("shelfStatus");
        item.audit_status = f.int("auditStatus");
        item.item_type = f.int("itemType");
        item.from_type = f.int("fromType");
        item.main_image_url = f.text("mainImageUrl");
        item.link_url = f.text("linkUrl");

        let skus = f.list(&["skuList"]).map_err(with_id)?;
        item.skus = skus
            .iter()
            .enumerate()
            .map(|(i, s)| Sku::from_element(s, kwai_item_id).map_err(|e| e.at(i)))
            .collect::<Result<_, _>>()?;
        Ok(item)
    }

    /// Whether the item's own status says it is deleted: `itemStatus` 2 (by the seller) or 3
    /// (by the platform).
    pub fn is_deleted(&self) -> bool {
        matches!(self.item_status, Some(2 | 3))
    }

    /// The key fields. `itemStatus` counts as the item's status: it says whether the item is
    /// deleted, which a wrong read would get backwards.
    fn read_keys(&mut self, f: Fields) -> Result<(), String> {
        self.item_status = f.key_int("itemStatus")?;
        self.create_time = f.key_int("createTime")?.unwrap_or(0);
        self.update_time = f.key_int("updateTime")?.unwrap_or(0);
        Ok(())
    }
}

impl Sku {
    /// Reads one `skuList` element of the item `parent`.
    fn from_element(element: &Element, parent: i64) -> Result<Sku, RecordError> {
        let within = |r: String| format!("{r} (in item {parent})");
        let no_id = |r: String| RecordError::new(SKU, None, within(r));
        let raw = element.raw;
        let f = Fields::record(&element.node).map_err(no_id)?;
        let kwai_sku_id = f.id("kwaiSkuId").map_err(no_id)?;
        let key = |name: &str| {
            f.key_int(name)
                .map(|v| v.filter(|&i| i != 0))
                .map_err(|r| RecordError::new(SKU, Some(kwai_sku_id), within(r)))
        };
        Ok(Sku {
            kwai_sku_id,
            kwai_item_id: key("kwaiItemId")?.unwrap_or(parent),
            create_time: key("createTime")?,
            update_time: key("updateTime")?,
            rel_sku_id: f.nonzero("relSkuId"),
            sku_nick: f.text("skuNick"),
            specification: f.text("specification"),
            image_url: f.text("imageUrl"),
            sku_stock: f.int_or_zero("skuStock"),
            reserve_stock: f.int("reserveStock"),
            sku_sale_price: f.int_or_zero("skuSalePrice"),
            is_valid: f.int("isValid"),
            raw: raw.get().to_string(),
        })
    }
}

/// One page of `open.item.list.get`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ItemPage {
    pub total_item_count: Option<i64>,
    pub current_page_number: Option<i64>,
    /// How many pages the full scan walks; 0 when absent.
    pub total_page: i64,
    pub items: Vec<Item>,
    /// Elements that could not be read (quarantined by the poller).
    pub rejected: Vec<super::Rejected>,
}

impl ItemPage {
    /// Reads the `data` of `open.item.list.get`. `null` is an empty page; an item that cannot
    /// be read is set aside in `rejected`. A `data` that is itself one item (the lookup by `relItemId`) is a page of
    /// that item.
    pub fn from_data(data: &RawValue) -> Result<ItemPage, RecordError> {
        let Some(page) = page_value(PAGE, data)? else {
            return Ok(ItemPage::default());
        };
        let f = Fields::of(Some(&page));
        // totalPage drives the scan, so it is a key field: a wrong type must not end it early.
        let total_page = f
            .key_int("totalPage")
            .map_err(|r| RecordError::new(PAGE, None, r))?
            .unwrap_or(0);
        let (items, rejected) = if !f.has("items") && f.has("kwaiItemId") {
            (vec![Item::from_node(data, &page)?], Vec::new())
        } else {
            page_records(PAGE, f, &["items"], Item::from_node)?
        };
        Ok(ItemPage {
            total_item_count: f.int("totalItemCount"),
            current_page_number: f.int("currentPageNumber"),
            total_page,
            items,
            rejected,
        })
    }
}

#[cfg(test)]
mod tests;
