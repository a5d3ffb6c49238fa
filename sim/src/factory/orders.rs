//! Orders as placed and refunds as opened, with the fake consignee data an order carries.

use rand::Rng;

use super::{
    Buyer, CDN, ITEM_IDS, IdPool, LONG_IDS, ShopContext, pick, random_base64, random_digits,
    random_hex, round_jiao,
};
use crate::catalog;
use crate::docs::{
    CategoryInfo, CustomizedInfo, ItemDoc, ItemExtra, Logistics, OrderAddress, OrderBaseInfo,
    OrderBaseInfoExtra, OrderCpsInfo, OrderDeliveryInfo, OrderDetailExtra, OrderDoc, OrderItemInfo,
    OrderNote, RefundDetailExtra, RefundDoc, ReturnFreightInfo, ReturnLogistics, SellerRoleInfo,
    SkuDoc, SubOrder, SubOrderBaseInfo, SubOrderDeliveryInfo,
};
use crate::lifecycle::{self, Stage};

/// What a new order buys and who buys it.
pub struct OrderLine<'a> {
    pub item: &'a ItemDoc,
    pub sku: &'a SkuDoc,
    pub gift: Option<(&'a ItemDoc, &'a SkuDoc)>,
    pub buyer: u64,
    pub shop_new_buyer: bool,
}

fn item_info(item: &ItemDoc, sku: &SkuDoc, num: i64, price: i64, discount: i64) -> OrderItemInfo {
    let original = sku.sku_sale_price;
    OrderItemInfo {
        sku_id: sku.kwai_sku_id,
        rel_sku_id: sku.rel_sku_id,
        sku_desc: sku
            .sku_prop
            .iter()
            .map(|p| format!("{}:{}", p.prop_name, p.prop_value_name))
            .collect::<Vec<_>>()
            .join(";"),
        sku_nick: sku.sku_nick.clone(),
        item_id: item.kwai_item_id,
        rel_item_id: item.rel_item_id,
        item_title: item.title.clone(),
        item_link_url: item.link_url.clone(),
        item_pic_url: item.main_image_url.clone(),
        num,
        // The list price before promotion: at least the sale price.
        original_price: if price == 0 {
            original
        } else {
            round_jiao(original as f64 * 1.25)
        },
        discount_fee: discount,
        price,
        item_type: 1,
        goods_code: String::new(),
        item_extra: ItemExtra {
            category_info: CategoryInfo {
                item_cid: item.category_id,
                category_name: item.category_name.clone(),
            },
        },
    }
}

/// What an order costs and how it was sold: drawn before anything else of a new order.
struct Deal {
    num: i64,
    price: i64,
    total: i64,
    discount: i64,
    express_fee: i64,
    cps_type: i32,
    distributor: (i64, String),
    activities: Vec<i32>,
}

impl Deal {
    fn draw(ctx: &ShopContext, rng: &mut impl Rng, line: &OrderLine<'_>) -> Self {
        let num = match rng.random_range(0..20) {
            0..16 => 1,
            16..19 => 2,
            _ => 3,
        };
        let price = line.sku.sku_sale_price;
        let total = price * num;
        let discount = if rng.random_bool(0.5) {
            0
        } else {
            round_jiao(total as f64 * rng.random_range(0.01..0.2)).clamp(0, total - 1)
        };
        let express_fee = if rng.random_bool(0.15) {
            *pick(rng, &[500, 800, 1000])
        } else {
            0
        };
        let (cps_type, distributor) = if rng.random_bool(0.25) {
            (2, pick(rng, &ctx.distributors).clone())
        } else {
            (1, (0, String::new()))
        };
        let activities = if line.gift.is_some() {
            vec![18]
        } else {
            match rng.random_range(0..20) {
                0..2 => vec![3],
                2 => vec![17],
                _ => Vec::new(),
            }
        };
        Self {
            num,
            price,
            total,
            discount,
            express_fee,
            cps_type,
            distributor,
            activities,
        }
    }
}

/// An order as placed at time `t` (status 10), with its detail extras.
pub fn new_order(
    ctx: &ShopContext,
    ids: &mut IdPool,
    rng: &mut impl Rng,
    t: i64,
    line: &OrderLine<'_>,
) -> (OrderDoc, OrderDetailExtra) {
    let buyer = ctx.buyer(line.buyer);
    let deal = Deal::draw(ctx, rng, line);
    let oid = ids.oid(rng, t);
    let sub_order_info = gift_sub_order(ids, rng, t, line).into_iter().collect();
    let order = OrderDoc {
        order_base_info: base_info(ctx, rng, oid, t, &buyer, &deal),
        order_item_info: item_info(line.item, line.sku, deal.num, deal.price, deal.discount),
        order_refund_list: Vec::new(),
        order_logistics_info: Vec::new(),
        order_note: OrderNote {
            seller_note: Vec::new(),
            order_note_info: Vec::new(),
        },
        order_address: address(rng, &buyer),
        order_cps_info: OrderCpsInfo {
            distributor_id: deal.distributor.0,
            distributor_name: deal.distributor.1,
        },
        order_delivery_info: OrderDeliveryInfo {
            max_package_num: 50,
            enable_append_package: false,
            total_package_num: 0,
            delivery_num: 0,
            package_num: 0,
        },
        sub_order_info,
    };
    (order, order_detail_extra(rng, line))
}

/// The gift's sub-order (type 2, at no charge), when the order carries a gift.
fn gift_sub_order(
    ids: &mut IdPool,
    rng: &mut impl Rng,
    t: i64,
    line: &OrderLine<'_>,
) -> Option<SubOrder> {
    line.gift.map(|(item, sku)| SubOrder {
        sub_order_base_info: SubOrderBaseInfo {
            oid: ids.oid(rng, t),
            status: lifecycle::UNPAID,
            send_time: 0,
            update_time: t,
            recv_time: 0,
        },
        sub_order_item_info: item_info(item, sku, 1, 0, 0),
        sub_order_logistics_info: Vec::new(),
        sub_order_delivery_info: SubOrderDeliveryInfo {
            delivery_num: 0,
            package_num: 0,
        },
        sub_order_type: 2,
    })
}

/// The order's base block as placed: unpaid, its deal, its buyer and seller, a buyer's remark.
fn base_info(
    ctx: &ShopContext,
    rng: &mut impl Rng,
    oid: i64,
    t: i64,
    buyer: &Buyer,
    deal: &Deal,
) -> OrderBaseInfo {
    let identity = &ctx.identity;
    OrderBaseInfo {
        oid,
        status: lifecycle::UNPAID,
        create_time: t,
        update_time: t,
        pay_time: 0,
        send_time: 0,
        recv_time: 0,
        refund_time: 0,
        total_fee: deal.total,
        discount_fee: deal.discount,
        express_fee: deal.express_fee,
        buyer_open_id: buyer.open_id.clone(),
        buyer_nick: buyer.nick.clone(),
        buyer_image: buyer.image.clone(),
        seller_open_id: identity.seller_open_id.clone(),
        seller_nick: identity.nick.clone(),
        remark: pick(rng, catalog::REMARKS).to_string(),
        pay_type: 0,
        pay_channel: String::new(),
        cps_type: deal.cps_type,
        pre_sale: 0,
        co_type: 0,
        comment_status: 0,
        risk_code: 0,
        all_activity_type: deal.activities.clone(),
        order_labels: Vec::new(),
        priority_delivery: false,
        remind_shipment_sign: 0,
        the_day_of_deliver_goods_time: 2,
        valid_promise_shipment_time_stamp: 0,
        disable_delivery_reason_code: Vec::new(),
        order_seller_role_info: SellerRoleInfo {
            role_type: 1,
            role_id: identity.seller_id,
            role_name: identity.nick.clone(),
        },
    }
}

/// The order's detail-only fields: whether the buyer is new, and the carrier.
fn order_detail_extra(rng: &mut impl Rng, line: &OrderLine<'_>) -> OrderDetailExtra {
    let (carrier_type, has_carrier_id) = *pick(rng, catalog::CARRIERS);
    OrderDetailExtra {
        order_customized_info: CustomizedInfo {
            customized_item_type: 0,
            customized_url: String::new(),
            customized_code: String::new(),
        },
        address_update_audit_info: None,
        order_base_info_extra: OrderBaseInfoExtra {
            shop_new_buyer: line.shop_new_buyer,
            platform_new_buyer: line.shop_new_buyer && rng.random_bool(0.2),
            carrier_type,
            carrier_id: if has_carrier_id {
                rng.random_range(ITEM_IDS)
            } else {
                0
            },
            privacy_info_auth_status: 0,
            order_poi_info: None,
        },
    }
}

/// The consignee block: masked values for display and per-order ciphertext around the buyer's
/// stable search-index key (§8.5); the plaintext fields are null.
fn address(rng: &mut impl Rng, buyer: &Buyer) -> OrderAddress {
    let (province, province_code, city, city_code, district, district_code, town, town_code) =
        *buyer.region;
    let [consignee_key, mobile_key, address_key] = &buyer.index_keys;
    let mut cipher = |key: &str| format!("#{key}#{}#", random_base64(rng, 24));
    OrderAddress {
        encrypted_consignee: cipher(consignee_key),
        encrypted_mobile: cipher(mobile_key),
        encrypted_address: cipher(address_key),
        desensitise_consignee: format!("{}**", buyer.surname),
        desensitise_mobile: buyer.mobile.clone(),
        desensitise_address: format!("{province}{city}{district}***"),
        province: province.to_string(),
        province_code,
        city: city.to_string(),
        city_code,
        district: district.to_string(),
        district_code,
        town: town.to_string(),
        town_code,
        consignee: None,
        mobile: None,
        address: None,
    }
}

/// A refund opened at time `t` on `order`, with its detail extras.
pub fn new_refund(
    ctx: &ShopContext,
    ids: &mut IdPool,
    rng: &mut impl Rng,
    order: &OrderDoc,
    handling_way: i32,
    stage: Stage,
    t: i64,
) -> (RefundDoc, RefundDetailExtra) {
    let base = &order.order_base_info;
    let item = &order.order_item_info;
    let price_protection = handling_way == lifecycle::REFUND_ONLY
        && stage != Stage::Unshipped
        && rng.random_bool(0.02);
    let refund_fee = refund_fee(rng, order, handling_way, price_protection);
    let reasons = if stage == Stage::Unshipped {
        catalog::REASONS_UNSHIPPED
    } else {
        catalog::REASONS_SHIPPED
    };
    let (reason, reason_desc) = *pick(rng, reasons);
    let pictures = pictures(rng, reason);
    let refund = RefundDoc {
        refund_id: ids.fresh(rng, LONG_IDS),
        oid: base.oid,
        item_id: item.item_id,
        sku_id: item.sku_id,
        rel_item_id: item.rel_item_id,
        rel_sku_id: item.rel_sku_id,
        sku_nick: item.sku_nick.clone(),
        logistics_id: 0,
        seller_id: ctx.identity.seller_id,
        buyer_id: 0,
        handling_way,
        status: lifecycle::initial_refund_status(handling_way),
        negotiate_status: 1,
        refund_type: if rng.random_bool(0.95) { 1 } else { 2 },
        refund_fee,
        refund_reason: reason,
        refund_reason_desc: reason_desc.to_string(),
        refund_desc: pick(rng, catalog::REFUND_DESCS).to_string(),
        receipt_status: if stage == Stage::Received { 2 } else { 1 },
        create_time: t,
        update_time: t,
        submit_time: t,
        negotiate_update_time: t,
        end_time: 0,
        expire_time: t + lifecycle::REFUND_DEADLINE_MS,
    };
    let extra = refund_detail_extra(base, pictures, price_protection);
    (refund, extra)
}

/// What the buyer asks back: nothing for an exchange, a small share for price protection,
/// else mostly all that was paid, sometimes a part; never more than was paid.
fn refund_fee(
    rng: &mut impl Rng,
    order: &OrderDoc,
    handling_way: i32,
    price_protection: bool,
) -> i64 {
    let base = &order.order_base_info;
    let paid = (base.total_fee - base.discount_fee).max(0);
    if handling_way == lifecycle::EXCHANGE {
        0
    } else if price_protection {
        round_jiao(paid as f64 * 0.05).clamp(1, paid.max(1))
    } else if rng.random_bool(0.8) {
        paid
    } else {
        round_jiao(paid as f64 * rng.random_range(0.1..0.9)).clamp(1, paid.max(1))
    }
    .min(paid)
}

/// The buyer's photos, for the reasons that call for them (3–8).
fn pictures(rng: &mut impl Rng, reason: i32) -> Vec<String> {
    if (3..=8).contains(&reason) {
        (0..rng.random_range(1..=3))
            .map(|i| format!("{CDN}/refund/{}/{i}.jpg", random_hex(rng, 8)))
            .collect()
    } else {
        Vec::new()
    }
}

/// A new refund's detail-only fields.
fn refund_detail_extra(
    base: &OrderBaseInfo,
    pictures: Vec<String>,
    price_protection: bool,
) -> RefundDetailExtra {
    RefundDetailExtra {
        buyer_open_id: base.buyer_open_id.clone(),
        pictures,
        logistics_info: ReturnLogistics {
            express_no: String::new(),
            express_code: 0,
        },
        product_num: 0,
        special_refund_type: i32::from(price_protection),
        seller_disagree_desc: String::new(),
        return_freight_info: ReturnFreightInfo {
            return_freight_amount: 0,
            return_freight_status: 0,
            return_freight_apply_desc: String::new(),
            return_freight_apply_images: Vec::new(),
        },
    }
}

/// (payType, payChannel) of a payment.
pub fn payment(rng: &mut impl Rng) -> (i32, &'static str) {
    *pick(rng, catalog::PAYMENTS)
}

/// A shipment's waybill.
pub fn waybill(rng: &mut impl Rng) -> Logistics {
    let (express_code, prefix, digits) = *pick(rng, catalog::COURIERS);
    Logistics {
        express_no: format!("{prefix}{}", random_digits(rng, digits)),
        express_code,
        logistics_id: rng.random_range(ITEM_IDS),
    }
}

/// The buyer's return waybill and its logistics id.
pub fn return_waybill(rng: &mut impl Rng) -> (ReturnLogistics, i64) {
    let waybill = waybill(rng);
    let back = ReturnLogistics {
        express_no: waybill.express_no,
        express_code: waybill.express_code,
    };
    (back, waybill.logistics_id)
}
