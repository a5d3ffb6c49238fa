//! Reading the mirror back: every column of `orders`, `refunds`, `items`, `skus` and
//! `sync_runs`, for the status page, reports and tests. Each record row converts back to the
//! typed record it was written from.

use super::db::from_row;
use std::sync::LazyLock;

use super::items::{ITEMS, SKUS};
use super::records::{ORDERS, REFUNDS};
use super::{Source, Store, StoreError};
use crate::api::records::{Item, Order, Refund, Sku};

/// One row of `orders` (a main order, or a gift with `parent_oid` set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRow {
    pub shop_id: String,
    pub oid: i64,
    pub parent_oid: Option<i64>,
    pub sub_order_type: Option<i64>,
    pub status: i64,
    pub create_time: i64,
    pub update_time: i64,
    pub pay_time: Option<i64>,
    pub send_time: Option<i64>,
    pub recv_time: Option<i64>,
    pub refund_time: Option<i64>,
    pub total_fee: i64,
    pub discount_fee: i64,
    pub express_fee: i64,
    pub buyer_open_id: Option<String>,
    pub buyer_nick: Option<String>,
    pub seller_open_id: Option<String>,
    pub seller_nick: Option<String>,
    pub remark: Option<String>,
    pub pay_type: Option<i64>,
    pub pay_channel: Option<String>,
    pub cps_type: Option<i64>,
    pub pre_sale: Option<i64>,
    pub co_type: Option<i64>,
    pub comment_status: Option<i64>,
    pub risk_code: Option<i64>,
    /// A JSON array of integers, as stored.
    pub activity_types: String,
    pub item_id: Option<i64>,
    pub rel_item_id: Option<i64>,
    pub sku_id: Option<i64>,
    pub rel_sku_id: Option<i64>,
    pub item_title: Option<String>,
    pub sku_desc: Option<String>,
    pub sku_nick: Option<String>,
    pub item_pic_url: Option<String>,
    pub num: i64,
    pub original_price: i64,
    pub price: i64,
    pub item_discount_fee: i64,
    pub category_id: Option<i64>,
    pub category_name: Option<String>,
    pub province: Option<String>,
    pub city: Option<String>,
    pub district: Option<String>,
    pub town: Option<String>,
    pub masked_consignee: Option<String>,
    pub masked_mobile: Option<String>,
    pub masked_address: Option<String>,
    pub encrypted_consignee: Option<String>,
    pub encrypted_mobile: Option<String>,
    pub encrypted_address: Option<String>,
    pub express_no: Option<String>,
    pub express_code: Option<i64>,
    pub logistics_id: Option<i64>,
    pub latest_refund_id: Option<i64>,
    pub latest_refund_status: Option<i64>,
    pub delivery_num: Option<i64>,
    pub package_num: Option<i64>,
    pub seller_role_type: Option<i64>,
    pub seller_role_id: Option<i64>,
    pub seller_role_name: Option<String>,
    pub distributor_id: Option<i64>,
    pub distributor_name: Option<String>,
    /// The JSON array of every package.
    pub packages: String,
    pub raw: String,
    pub source: Source,
    pub synced_at: i64,
}

from_row!(OrderRow {
    shop_id, oid, parent_oid, sub_order_type, status, create_time, update_time, pay_time, send_time, recv_time, refund_time, total_fee, discount_fee, express_fee, buyer_open_id, buyer_nick, seller_open_id, seller_nick, remark, pay_type, pay_channel, cps_type, pre_sale, co_type, comment_status, risk_code, activity_types, item_id, rel_item_id, sku_id, rel_sku_id, item_title, sku_desc, sku_nick, item_pic_url, num, original_price, price, item_discount_fee, category_id, category_name, province, city, district, town, masked_consignee, masked_mobile, masked_address, encrypted_consignee, encrypted_mobile, encrypted_address, express_no, express_code, logistics_id, latest_refund_id, latest_refund_status, delivery_num, package_num, seller_role_type, seller_role_id, seller_role_name, distributor_id, distributor_name, packages, raw, source as String, synced_at,
});

impl OrderRow {
    /// The order as it was written (without `gifts`: those are rows of their own).
    pub fn to_order(&self) -> Result<Order, StoreError> {
        let activity_types = serde_json::from_str(&self.activity_types)
            .map_err(|e| StoreError::Corrupt(format!("order {}: activity_types: {e}", self.oid)))?;
        let r = self.clone();
        Ok(Order {
            oid: r.oid,
            parent_oid: r.parent_oid,
            sub_order_type: r.sub_order_type,
            status: r.status,
            create_time: r.create_time,
            update_time: r.update_time,
            pay_time: r.pay_time,
            send_time: r.send_time,
            recv_time: r.recv_time,
            refund_time: r.refund_time,
            total_fee: r.total_fee,
            discount_fee: r.discount_fee,
            express_fee: r.express_fee,
            buyer_open_id: r.buyer_open_id,
            buyer_nick: r.buyer_nick,
            seller_open_id: r.seller_open_id,
            seller_nick: r.seller_nick,
            remark: r.remark,
            pay_type: r.pay_type,
            pay_channel: r.pay_channel,
            cps_type: r.cps_type,
            pre_sale: r.pre_sale,
            co_type: r.co_type,
            comment_status: r.comment_status,
            risk_code: r.risk_code,
            activity_types,
            item_id: r.item_id,
            rel_item_id: r.rel_item_id,
            sku_id: r.sku_id,
            rel_sku_id: r.rel_sku_id,
            item_title: r.item_title,
            sku_desc: r.sku_desc,
            sku_nick: r.sku_nick,
            item_pic_url: r.item_pic_url,
            num: r.num,
            original_price: r.original_price,
            price: r.price,
            item_discount_fee: r.item_discount_fee,
            category_id: r.category_id,
            category_name: r.category_name,
            province: r.province,
            city: r.city,
            district: r.district,
            town: r.town,
            masked_consignee: r.masked_consignee,
            masked_mobile: r.masked_mobile,
            masked_address: r.masked_address,
            encrypted_consignee: r.encrypted_consignee,
            encrypted_mobile: r.encrypted_mobile,
            encrypted_address: r.encrypted_address,
            express_no: r.express_no,
            express_code: r.express_code,
            logistics_id: r.logistics_id,
            latest_refund_id: r.latest_refund_id,
            latest_refund_status: r.latest_refund_status,
            delivery_num: r.delivery_num,
            package_num: r.package_num,
            seller_role_type: r.seller_role_type,
            seller_role_id: r.seller_role_id,
            seller_role_name: r.seller_role_name,
            distributor_id: r.distributor_id,
            distributor_name: r.distributor_name,
            packages: r.packages,
            gifts: Vec::new(),
            raw: r.raw,
        })
    }
}

/// One row of `refunds`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRow {
    pub shop_id: String,
    pub refund_id: i64,
    pub oid: i64,
    pub item_id: Option<i64>,
    pub sku_id: Option<i64>,
    pub rel_item_id: Option<i64>,
    pub rel_sku_id: Option<i64>,
    pub sku_nick: Option<String>,
    pub seller_id: Option<i64>,
    pub buyer_id: Option<i64>,
    pub buyer_open_id: Option<String>,
    pub handling_way: Option<i64>,
    pub status: i64,
    pub negotiate_status: Option<i64>,
    pub refund_type: Option<i64>,
    pub refund_fee: i64,
    pub refund_reason: Option<i64>,
    pub refund_reason_desc: Option<String>,
    pub refund_desc: Option<String>,
    pub receipt_status: Option<i64>,
    pub special_refund_type: Option<i64>,
    pub create_time: i64,
    pub update_time: i64,
    pub submit_time: Option<i64>,
    pub negotiate_update_time: Option<i64>,
    pub end_time: Option<i64>,
    pub expire_time: Option<i64>,
    pub logistics_id: Option<i64>,
    pub express_no: Option<String>,
    pub raw: String,
    pub source: Source,
    pub synced_at: i64,
}

from_row!(RefundRow {
    shop_id, refund_id, oid, item_id, sku_id, rel_item_id, rel_sku_id, sku_nick, seller_id, buyer_id, buyer_open_id, handling_way, status, negotiate_status, refund_type, refund_fee, refund_reason, refund_reason_desc, refund_desc, receipt_status, special_refund_type, create_time, update_time, submit_time, negotiate_update_time, end_time, expire_time, logistics_id, express_no, raw, source as String, synced_at,
});

impl RefundRow {
    /// The refund as it was written.
    pub fn to_refund(&self) -> Refund {
        let r = self.clone();
        Refund {
            refund_id: r.refund_id,
            oid: r.oid,
            item_id: r.item_id,
            sku_id: r.sku_id,
            rel_item_id: r.rel_item_id,
            rel_sku_id: r.rel_sku_id,
            sku_nick: r.sku_nick,
            seller_id: r.seller_id,
            buyer_id: r.buyer_id,
            buyer_open_id: r.buyer_open_id,
            handling_way: r.handling_way,
            status: r.status,
            negotiate_status: r.negotiate_status,
            refund_type: r.refund_type,
            refund_fee: r.refund_fee,
            refund_reason: r.refund_reason,
            refund_reason_desc: r.refund_reason_desc,
            refund_desc: r.refund_desc,
            receipt_status: r.receipt_status,
            special_refund_type: r.special_refund_type,
            create_time: r.create_time,
            update_time: r.update_time,
            submit_time: r.submit_time,
            negotiate_update_time: r.negotiate_update_time,
            end_time: r.end_time,
            expire_time: r.expire_time,
            logistics_id: r.logistics_id,
            express_no: r.express_no,
            raw: r.raw,
        }
    }
}

/// One row of `items`, soft-deleted ones included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemRow {
    pub shop_id: String,
    pub kwai_item_id: i64,
    pub rel_item_id: Option<i64>,
    pub user_id: Option<i64>,
    pub title: Option<String>,
    pub category_id: Option<i64>,
    pub category_name: Option<String>,
    pub price: i64,
    pub volume: Option<i64>,
    pub item_status: Option<i64>,
    pub shelf_status: Option<i64>,
    pub audit_status: Option<i64>,
    pub item_type: Option<i64>,
    pub from_type: Option<i64>,
    pub main_image_url: Option<String>,
    pub link_url: Option<String>,
    pub create_time: i64,
    pub update_time: i64,
    pub raw: String,
    pub source: Source,
    pub synced_at: i64,
    /// The last full scan that listed the item.
    pub seen_scan: Option<i64>,
    /// When a completed scan (or a push) found the item gone.
    pub deleted_at: Option<i64>,
}

from_row!(ItemRow {
    shop_id, kwai_item_id, rel_item_id, user_id, title, category_id, category_name, price, volume, item_status, shelf_status, audit_status, item_type, from_type, main_image_url, link_url, create_time, update_time, raw, source as String, synced_at, seen_scan, deleted_at,
});

impl ItemRow {
    /// The item as it was written (without `skus`: those are rows of their own).
    pub fn to_item(&self) -> Item {
        let r = self.clone();
        Item {
            kwai_item_id: r.kwai_item_id,
            rel_item_id: r.rel_item_id,
            user_id: r.user_id,
            title: r.title,
            category_id: r.category_id,
            category_name: r.category_name,
            price: r.price,
            volume: r.volume,
            item_status: r.item_status,
            shelf_status: r.shelf_status,
            audit_status: r.audit_status,
            item_type: r.item_type,
            from_type: r.from_type,
            main_image_url: r.main_image_url,
            link_url: r.link_url,
            create_time: r.create_time,
            update_time: r.update_time,
            skus: Vec::new(),
            raw: r.raw,
        }
    }
}

/// One row of `skus`, soft-deleted ones included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkuRow {
    pub shop_id: String,
    pub kwai_sku_id: i64,
    pub kwai_item_id: i64,
    pub rel_sku_id: Option<i64>,
    pub sku_nick: Option<String>,
    pub specification: Option<String>,
    pub image_url: Option<String>,
    pub sku_stock: i64,
    pub reserve_stock: Option<i64>,
    pub sku_sale_price: i64,
    pub is_valid: Option<i64>,
    pub create_time: Option<i64>,
    pub update_time: Option<i64>,
    pub raw: String,
    /// The version the upsert guard compares: `update_time`, else the item's.
    pub version: i64,
    pub source: Source,
    pub synced_at: i64,
    pub deleted_at: Option<i64>,
}

from_row!(SkuRow {
    shop_id, kwai_sku_id, kwai_item_id, rel_sku_id, sku_nick, specification, image_url, sku_stock, reserve_stock, sku_sale_price, is_valid, create_time, update_time, raw, version, source as String, synced_at, deleted_at,
});

impl SkuRow {
    /// The SKU as it was written.
    pub fn to_sku(&self) -> Sku {
        let r = self.clone();
        Sku {
            kwai_sku_id: r.kwai_sku_id,
            kwai_item_id: r.kwai_item_id,
            rel_sku_id: r.rel_sku_id,
            sku_nick: r.sku_nick,
            specification: r.specification,
            image_url: r.image_url,
            sku_stock: r.sku_stock,
            reserve_stock: r.reserve_stock,
            sku_sale_price: r.sku_sale_price,
            is_valid: r.is_valid,
            create_time: r.create_time,
            update_time: r.update_time,
            raw: r.raw,
        }
    }
}

static SELECT_ORDERS: LazyLock<String> = LazyLock::new(|| ORDERS.select_sql());
static SELECT_REFUNDS: LazyLock<String> = LazyLock::new(|| REFUNDS.select_sql());
static SELECT_ITEMS: LazyLock<String> = LazyLock::new(|| ITEMS.select_sql());
static SELECT_SKUS: LazyLock<String> = LazyLock::new(|| SKUS.select_sql());

impl Store {
    /// Every `orders` row of the shop (gifts included), by oid.
    pub async fn order_rows(&self, shop_id: &str) -> Result<Vec<OrderRow>, StoreError> {
        let sql: &'static str = &SELECT_ORDERS;
        self.pool
            .fetch_all("reading orders", sql, &[shop_id.into()])
            .await
    }

    /// Every `refunds` row of the shop, by refund id.
    pub async fn refund_rows(&self, shop_id: &str) -> Result<Vec<RefundRow>, StoreError> {
        let sql: &'static str = &SELECT_REFUNDS;
        self.pool
            .fetch_all("reading refunds", sql, &[shop_id.into()])
            .await
    }

    /// Every `items` row of the shop (soft-deleted included), by item id.
    pub async fn item_rows(&self, shop_id: &str) -> Result<Vec<ItemRow>, StoreError> {
        let sql: &'static str = &SELECT_ITEMS;
        self.pool
            .fetch_all("reading items", sql, &[shop_id.into()])
            .await
    }

    /// Every `skus` row of the shop (soft-deleted included), by SKU id.
    pub async fn sku_rows(&self, shop_id: &str) -> Result<Vec<SkuRow>, StoreError> {
        let sql: &'static str = &SELECT_SKUS;
        self.pool
            .fetch_all("reading skus", sql, &[shop_id.into()])
            .await
    }
}
