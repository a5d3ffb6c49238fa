//! The shapes of the simulated platform's documents (reference §8–§10): orders with their gift
//! sub-orders, refunds, items with SKUs, and the extra fields their detail APIs add.
//!
//! The generator serialises these straight into the stored JSON text, and the mutation clock reads
//! a document back into them, changes it and writes it again, so both paths produce the same
//! shape. Field names are the platform's camelCase; money is fen, times are epoch ms (0 = not
//! reached).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use super::model::Doc;

/// An order as the list API returns it (`open.order.cursor.list`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderDoc {
    pub order_base_info: OrderBaseInfo,
    pub order_item_info: OrderItemInfo,
    /// Only the latest refund of the order, empty when there is none.
    pub order_refund_list: Vec<OrderRefundEntry>,
    pub order_logistics_info: Vec<Logistics>,
    pub order_note: OrderNote,
    pub order_address: OrderAddress,
    pub order_cps_info: OrderCpsInfo,
    pub order_delivery_info: OrderDeliveryInfo,
    /// Gift sub-orders, each with its own oid and status.
    pub sub_order_info: Vec<SubOrder>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderBaseInfo {
    pub oid: i64,
    pub status: i32,
    pub create_time: i64,
    pub update_time: i64,
    pub pay_time: i64,
    pub send_time: i64,
    pub recv_time: i64,
    pub refund_time: i64,
    pub total_fee: i64,
    pub discount_fee: i64,
    pub express_fee: i64,
    pub buyer_open_id: String,
    pub buyer_nick: String,
    pub buyer_image: String,
    pub seller_open_id: String,
    pub seller_nick: String,
    pub remark: String,
    pub pay_type: i32,
    pub pay_channel: String,
    pub cps_type: i32,
    pub pre_sale: i32,
    pub co_type: i32,
    pub comment_status: i32,
    pub risk_code: i32,
    pub all_activity_type: Vec<i32>,
    pub order_labels: Vec<i32>,
    pub priority_delivery: bool,
    pub remind_shipment_sign: i32,
    pub the_day_of_deliver_goods_time: i32,
    pub valid_promise_shipment_time_stamp: i64,
    pub disable_delivery_reason_code: Vec<i32>,
    pub order_seller_role_info: SellerRoleInfo,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SellerRoleInfo {
    pub role_type: i32,
    pub role_id: i64,
    pub role_name: String,
}

/// The one SKU line of an order (also the shape of a gift sub-order's item).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderItemInfo {
    pub sku_id: i64,
    pub rel_sku_id: i64,
    pub sku_desc: String,
    pub sku_nick: String,
    pub item_id: i64,
    pub rel_item_id: i64,
    pub item_title: String,
    pub item_link_url: String,
    pub item_pic_url: String,
    pub num: i64,
    pub original_price: i64,
    pub discount_fee: i64,
    pub price: i64,
    pub item_type: i32,
    pub goods_code: String,
    pub item_extra: ItemExtra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemExtra {
    pub category_info: CategoryInfo,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CategoryInfo {
    pub item_cid: i64,
    pub category_name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderRefundEntry {
    pub refund_id: i64,
    pub refund_status: i32,
    pub handling_way: i32,
    pub special_refund_type: i32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Logistics {
    pub express_no: String,
    pub express_code: i32,
    pub logistics_id: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderNote {
    pub seller_note: Vec<String>,
    pub order_note_info: Vec<Value>,
}

/// The consignee block: only ciphertext and masked values; the plaintext fields are always null.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderAddress {
    pub encrypted_consignee: String,
    pub encrypted_mobile: String,
    pub encrypted_address: String,
    pub desensitise_consignee: String,
    pub desensitise_mobile: String,
    pub desensitise_address: String,
    pub province: String,
    pub province_code: i64,
    pub city: String,
    pub city_code: i64,
    pub district: String,
    pub district_code: i64,
    pub town: String,
    pub town_code: i64,
    pub consignee: Option<String>,
    pub mobile: Option<String>,
    pub address: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderCpsInfo {
    pub distributor_id: i64,
    pub distributor_name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderDeliveryInfo {
    pub max_package_num: i32,
    pub enable_append_package: bool,
    pub total_package_num: i32,
    pub delivery_num: i64,
    pub package_num: i32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubOrder {
    pub sub_order_base_info: SubOrderBaseInfo,
    pub sub_order_item_info: OrderItemInfo,
    pub sub_order_logistics_info: Vec<Logistics>,
    pub sub_order_delivery_info: SubOrderDeliveryInfo,
    /// 2 = gift.
    pub sub_order_type: i32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubOrderBaseInfo {
    pub oid: i64,
    pub status: i32,
    pub send_time: i64,
    pub update_time: i64,
    pub recv_time: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubOrderDeliveryInfo {
    pub delivery_num: i64,
    pub package_num: i32,
}

/// What `open.order.detail` adds to the list view: `orderBaseInfoExtra` is merged into
/// `orderBaseInfo` by the server, the rest goes at the top level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderDetailExtra {
    pub order_customized_info: CustomizedInfo,
    pub address_update_audit_info: Option<Value>,
    pub order_base_info_extra: OrderBaseInfoExtra,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomizedInfo {
    pub customized_item_type: i32,
    pub customized_url: String,
    pub customized_code: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderBaseInfoExtra {
    pub shop_new_buyer: bool,
    pub platform_new_buyer: bool,
    pub carrier_type: i32,
    pub carrier_id: i64,
    pub privacy_info_auth_status: i32,
    pub order_poi_info: Option<Value>,
}

/// A refund as the refund list API returns it (`refundOrderInfoList[]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefundDoc {
    pub refund_id: i64,
    pub oid: i64,
    pub item_id: i64,
    pub sku_id: i64,
    pub rel_item_id: i64,
    pub rel_sku_id: i64,
    pub sku_nick: String,
    pub logistics_id: i64,
    pub seller_id: i64,
    pub buyer_id: i64,
    pub handling_way: i32,
    pub status: i32,
    pub negotiate_status: i32,
    pub refund_type: i32,
    pub refund_fee: i64,
    pub refund_reason: i32,
    pub refund_reason_desc: String,
    pub refund_desc: String,
    pub receipt_status: i32,
    pub create_time: i64,
    pub update_time: i64,
    pub submit_time: i64,
    pub negotiate_update_time: i64,
    pub end_time: i64,
    pub expire_time: i64,
}

/// What `open.seller.order.refund.detail` adds to the list view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefundDetailExtra {
    pub buyer_open_id: String,
    pub pictures: Vec<String>,
    pub logistics_info: ReturnLogistics,
    pub product_num: i64,
    pub special_refund_type: i32,
    pub seller_disagree_desc: String,
    pub return_freight_info: ReturnFreightInfo,
}

/// The buyer's return shipment (empty until the goods are sent back).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReturnLogistics {
    pub express_no: String,
    pub express_code: i32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReturnFreightInfo {
    pub return_freight_amount: i64,
    pub return_freight_status: i32,
    pub return_freight_apply_desc: String,
    pub return_freight_apply_images: Vec<String>,
}

/// An item as `open.item.list.get` returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemDoc {
    pub kwai_item_id: i64,
    pub rel_item_id: i64,
    pub user_id: i64,
    pub title: String,
    pub details: String,
    pub main_image_url: String,
    pub image_urls: Vec<String>,
    pub link_url: String,
    pub category_id: i64,
    pub category_name: String,
    /// The lowest SKU sale price.
    pub price: i64,
    pub volume: i64,
    pub item_status: i32,
    pub shelf_status: i32,
    pub audit_status: i32,
    pub from_type: i32,
    pub appkey: String,
    pub express_template_id: i64,
    pub item_type: i32,
    pub multiple_stock: bool,
    pub create_time: i64,
    pub update_time: i64,
    pub sku_list: Vec<SkuDoc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SkuDoc {
    pub kwai_sku_id: i64,
    pub rel_sku_id: i64,
    pub sku_stock: i64,
    pub reserve_stock: i64,
    pub sku_sale_price: i64,
    pub sku_nick: String,
    pub specification: String,
    pub image_url: String,
    pub is_valid: i32,
    pub gtin_code: String,
    pub goods_id: i64,
    pub goods_code: Vec<String>,
    pub sku_prop: Vec<SkuProp>,
    pub create_time: i64,
    pub update_time: i64,
    pub kwai_item_id: i64,
    pub appkey: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SkuProp {
    pub prop_name: String,
    pub prop_value_name: String,
}

impl ItemDoc {
    /// The lowest sale price over the SKUs (the item's `price`).
    pub fn min_sku_price(&self) -> i64 {
        self.sku_list
            .iter()
            .map(|s| s.sku_sale_price)
            .min()
            .unwrap_or(0)
    }
}

/// Compact JSON text of a document struct.
pub fn raw<T: Serialize>(value: &T) -> Box<RawValue> {
    serde_json::value::to_raw_value(value).expect("document structs have string keys only")
}

/// A document struct as a JSON value (for `DocSet::update` edits).
pub fn to_value<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("document structs have string keys only")
}

/// Reads a stored document's list-view JSON into a struct; `None` if it has another shape.
pub fn parse<T: DeserializeOwned>(doc: &Doc) -> Option<T> {
    serde_json::from_str(doc.json.get()).ok()
}

/// Reads a stored document's detail extras into a struct; `None` if they have another shape.
pub fn parse_extra<T: DeserializeOwned>(doc: &Doc) -> Option<T> {
    serde_json::from_str(doc.detail_extra.get()).ok()
}
