//! Orders from `open.order.cursor.list` and `open.order.detail` (reference §8): one order is one
//! SKU line, flattened from its blocks (`orderBaseInfo`, `orderItemInfo`, `orderAddress`, …),
//! with its gift sub-orders (`subOrderInfo[]`) as orders of their own.

use serde_json::value::RawValue;

use super::fields::{self, Element, Fields, Node};
use super::{NO_MORE, RecordError, page_cursor, page_records, page_value};

const KIND: &str = "order";
const GIFT: &str = "gift order";
const PAGE: &str = "order page";

/// One order (or gift sub-order). Money is fen, times are epoch ms; `None` or 0 means the
/// platform did not say (or, for the `Option` timestamps, the step was not reached).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Order {
    pub oid: i64,
    /// The main order's oid, for a gift sub-order.
    pub parent_oid: Option<i64>,
    /// `subOrderType` of a sub-order (2 = gift).
    pub sub_order_type: Option<i64>,
    /// 10 awaiting payment, 30 paid, 40 shipped, 50 received, 70 success, 80 closed.
    pub status: i64,
    pub create_time: i64,
    /// The version used for upserts.
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
    /// The buyer's message.
    pub remark: Option<String>,
    pub pay_type: Option<i64>,
    pub pay_channel: Option<String>,
    pub cps_type: Option<i64>,
    pub pre_sale: Option<i64>,
    pub co_type: Option<i64>,
    pub comment_status: Option<i64>,
    /// 10001 = fraud order, do not ship.
    pub risk_code: Option<i64>,
    /// `allActivityType`.
    pub activity_types: Vec<i64>,
    pub item_id: Option<i64>,
    pub rel_item_id: Option<i64>,
    pub sku_id: Option<i64>,
    pub rel_sku_id: Option<i64>,
    pub item_title: Option<String>,
    pub sku_desc: Option<String>,
    pub sku_nick: Option<String>,
    pub item_pic_url: Option<String>,
    /// Quantity.
    pub num: i64,
    /// Unit price before promotion.
    pub original_price: i64,
    /// Unit price snapshot.
    pub price: i64,
    /// `orderItemInfo.discountFee`.
    pub item_discount_fee: i64,
    /// `itemExtra.categoryInfo.itemCid`.
    pub category_id: Option<i64>,
    pub category_name: Option<String>,
    pub province: Option<String>,
    pub city: Option<String>,
    pub district: Option<String>,
    pub town: Option<String>,
    /// `desensitiseConsignee`: masked, for display.
    pub masked_consignee: Option<String>,
    pub masked_mobile: Option<String>,
    pub masked_address: Option<String>,
    /// Ciphertext as returned; never decrypted in bulk (reference §13.3).
    pub encrypted_consignee: Option<String>,
    pub encrypted_mobile: Option<String>,
    pub encrypted_address: Option<String>,
    /// Every package, as the JSON array of `orderLogisticsInfo` (`subOrderLogisticsInfo` for a
    /// gift) the platform sent: `[]` when none.
    pub packages: String,
    /// From the first `orderLogisticsInfo` entry.
    pub express_no: Option<String>,
    pub express_code: Option<i64>,
    pub logistics_id: Option<i64>,
    /// The latest refund (`orderRefundList` shows only that one; the refund APIs have the rest).
    pub latest_refund_id: Option<i64>,
    pub latest_refund_status: Option<i64>,
    /// Shipped quantity; equals `num` when fully shipped (status is 40 after the first unit).
    pub delivery_num: Option<i64>,
    pub package_num: Option<i64>,
    /// `orderSellerRoleInfo`: 1 owner, 2 influencer, 3 authorized.
    pub seller_role_type: Option<i64>,
    pub seller_role_id: Option<i64>,
    pub seller_role_name: Option<String>,
    pub distributor_id: Option<i64>,
    pub distributor_name: Option<String>,
    /// Gift sub-orders (`subOrderInfo[]`), each with `parent_oid = Some(self.oid)`.
    pub gifts: Vec<Order>,
    /// The element's JSON, byte for byte.
    pub raw: String,
}

impl Order {
    /// Reads an `open.order.detail` `data` (the blocks of an `orderList` element).
    pub fn from_raw(raw: &RawValue) -> Result<Order, RecordError> {
        let value = fields::parse(raw).map_err(|r| RecordError::new(KIND, None, r))?;
        Order::from_node(raw, &value)
    }

    /// Reads one `orderList` element: `raw` is its JSON, `value` the same read.
    fn from_node(raw: &RawValue, value: &Node) -> Result<Order, RecordError> {
        let no_id = |r: String| RecordError::new(KIND, None, r);
        let top = Fields::record(value).map_err(no_id)?;
        let base = top.key_block("orderBaseInfo").map_err(no_id)?;
        let oid = base.id("oid").map_err(no_id)?;
        let with_id = |r: String| RecordError::new(KIND, Some(oid), r);

        let mut order = Order {
            oid,
            raw: raw.get().to_string(),
            ..Order::default()
        };
        order.read_keys(base).map_err(with_id)?;
        order.read_base(base);
        order.read_lines(
            top.block("orderItemInfo"),
            top.first_of(&["orderLogisticsInfo"]),
            top.block("orderDeliveryInfo"),
        );
        order.read_address(top.block("orderAddress"));
        order.read_parties(top, base);
        order.packages = packages(top, "orderLogisticsInfo");

        let gifts = top.list(&["subOrderInfo"]).map_err(with_id)?;
        order.gifts = gifts
            .iter()
            .enumerate()
            .map(|(i, g)| order.gift(g).map_err(|e| e.at(i)))
            .collect::<Result<_, _>>()?;
        Ok(order)
    }

    /// What the buyer paid, by the community convention `totalFee − discountFee`; the platform
    /// documents no formula (reference §8.3, §15), so reports should also keep the raw fees.
    pub fn amount_paid(&self) -> i64 {
        self.total_fee.saturating_sub(self.discount_fee)
    }

    /// The key fields: an unreadable one rejects the record rather than mis-versioning it.
    fn read_keys(&mut self, base: Fields) -> Result<(), String> {
        self.status = base.key_int("status")?.unwrap_or(0);
        self.create_time = base.key_int("createTime")?.unwrap_or(0);
        self.update_time = base.key_int("updateTime")?.unwrap_or(0);
        Ok(())
    }

    /// Descriptive `orderBaseInfo` fields (wrong types degrade to `None`/0).
    fn read_base(&mut self, base: Fields) {
        self.pay_time = base.nonzero("payTime");
        self.send_time = base.nonzero("sendTime");
        self.recv_time = base.nonzero("recvTime");
        self.refund_time = base.nonzero("refundTime");
        self.total_fee = base.int_or_zero("totalFee");
        self.discount_fee = base.int_or_zero("discountFee");
        self.express_fee = base.int_or_zero("expressFee");
        self.buyer_open_id = base.text("buyerOpenId");
        self.buyer_nick = base.text("buyerNick");
        self.seller_open_id = base.text("sellerOpenId");
        self.seller_nick = base.text("sellerNick");
        self.remark = base.text("remark");
        self.pay_type = base.int("payType");
        self.pay_channel = base.text("payChannel");
        self.cps_type = base.int("cpsType");
        self.pre_sale = base.int("preSale");
        self.co_type = base.int("coType");
        self.comment_status = base.int("commentStatus");
        self.risk_code = base.int("riskCode");
        self.activity_types = base.ints("allActivityType");
    }

    /// The item line, first logistics entry and delivery counts (same shape for gifts).
    fn read_lines(&mut self, item: Fields, logistics: Fields, delivery: Fields) {
        self.item_id = item.nonzero("itemId");
        self.rel_item_id = item.nonzero("relItemId");
        self.sku_id = item.nonzero("skuId");
        self.rel_sku_id = item.nonzero("relSkuId");
        self.item_title = item.text("itemTitle");
        self.sku_desc = item.text("skuDesc");
        self.sku_nick = item.text("skuNick");
        self.item_pic_url = item.text("itemPicUrl");
        self.num = item.int_or_zero("num");
        self.original_price = item.int_or_zero("originalPrice");
        self.price = item.int_or_zero("price");
        self.item_discount_fee = item.int_or_zero("discountFee");
        let category = item.block("itemExtra").block("categoryInfo");
        self.category_id = category.nonzero("itemCid");
        self.category_name = category.text("categoryName");
        self.express_no = logistics.text("expressNo");
        self.express_code = logistics.int("expressCode");
        self.logistics_id = logistics.nonzero("logisticsId");
        self.delivery_num = delivery.int("deliveryNum");
        self.package_num = delivery.int("packageNum");
    }

    fn read_address(&mut self, address: Fields) {
        self.province = address.text("province");
        self.city = address.text("city");
        self.district = address.text("district");
        self.town = address.text("town");
        self.masked_consignee = address.text("desensitiseConsignee");
        self.masked_mobile = address.text("desensitiseMobile");
        self.masked_address = address.text("desensitiseAddress");
        self.encrypted_consignee = address.text("encryptedConsignee");
        self.encrypted_mobile = address.text("encryptedMobile");
        self.encrypted_address = address.text("encryptedAddress");
    }

    /// The latest refund, the seller's role and the distributor; both spellings of the refund
    /// list and of the role block are accepted (reference §8.6).
    fn read_parties(&mut self, top: Fields, base: Fields) {
        let refund = top.first_of(&["orderRefundList", "orderDetailRefundList"]);
        self.latest_refund_id = refund.nonzero("refundId");
        self.latest_refund_status = refund.int("refundStatus");
        // The declarations put the role inside orderBaseInfo; accept it beside it too.
        const ROLE: [&str; 2] = ["orderSellerRoleInfo", "orderlSellerRoleInfo"];
        let role = base.block_of(&ROLE).or(top.block_of(&ROLE));
        self.seller_role_type = role.int("roleType");
        self.seller_role_id = role.nonzero("roleId");
        self.seller_role_name = role.text("roleName");
        let cps = top.block("orderCpsInfo");
        self.distributor_id = cps.nonzero("distributorId");
        self.distributor_name = cps.text("distributorName");
    }

    /// Reads one `subOrderInfo` element of this order. A gift carries few base fields: it
    /// inherits what it lacks of createTime, payTime, buyer and seller from its parent, and also
    /// updateTime, since a version of 0 would never be replaced by later reads.
    fn gift(&self, element: &Element) -> Result<Order, RecordError> {
        let within = |r: String| format!("{r} (in order {})", self.oid);
        let no_id = |r: String| RecordError::new(GIFT, None, within(r));
        let raw = element.raw;
        let top = Fields::record(&element.node).map_err(no_id)?;
        let base = top.key_block("subOrderBaseInfo").map_err(no_id)?;
        let oid = base.id("oid").map_err(no_id)?;

        let mut gift = Order {
            oid,
            parent_oid: Some(self.oid),
            sub_order_type: top.int("subOrderType").or(base.int("subOrderType")),
            raw: raw.get().to_string(),
            ..Order::default()
        };
        gift.read_keys(base)
            .map_err(|r| RecordError::new(GIFT, Some(oid), within(r)))?;
        gift.read_base(base);
        let inherit = |own: i64, parent: i64| if own == 0 { parent } else { own };
        gift.create_time = inherit(gift.create_time, self.create_time);
        gift.update_time = inherit(gift.update_time, self.update_time);
        gift.pay_time = gift.pay_time.or(self.pay_time);
        for (own, parent) in [
            (&mut gift.buyer_open_id, &self.buyer_open_id),
            (&mut gift.buyer_nick, &self.buyer_nick),
            (&mut gift.seller_open_id, &self.seller_open_id),
            (&mut gift.seller_nick, &self.seller_nick),
        ] {
            if own.is_none() {
                own.clone_from(parent);
            }
        }
        gift.read_lines(
            top.block("subOrderItemInfo"),
            top.first_of(&["subOrderLogisticsInfo"]),
            top.block("subOrderDeliveryInfo"),
        );
        gift.packages = packages(top, "subOrderLogisticsInfo");
        Ok(gift)
    }
}

/// The package array under `name`, as sent (each element byte for byte); `[]` when absent or
/// not an array (a descriptive field: the record stays, its raw JSON keeps whatever was there).
fn packages(top: Fields, name: &str) -> String {
    let list = top.list(&[name]).unwrap_or_default();
    let mut out =
        String::with_capacity(2 + list.iter().map(|p| p.raw.get().len() + 1).sum::<usize>());
    out.push('[');
    for (i, package) in list.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(package.raw.get());
    }
    out.push(']');
    out
}

/// One page of `open.order.cursor.list`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct OrderPage {
    /// The next cursor, `"nomore"` at the end; `""` when absent. Opaque: never parsed.
    pub cursor: String,
    pub begin_time: Option<i64>,
    pub end_time: Option<i64>,
    pub page_size: Option<i64>,
    pub orders: Vec<Order>,
    /// Elements that could not be read (quarantined by the poller).
    pub rejected: Vec<super::Rejected>,
}

impl OrderPage {
    /// Reads the `data` of `open.order.cursor.list`. `null` is an empty page (with an empty
    /// cursor, which the poller treats as an unexpected end); an element that cannot be read is
    /// set aside in `rejected`.
    pub fn from_data(data: &RawValue) -> Result<OrderPage, RecordError> {
        let Some(page) = page_value(PAGE, data)? else {
            return Ok(OrderPage::default());
        };
        let f = Fields::of(Some(&page));
        let (orders, rejected) = page_records(PAGE, f, &["orderList"], Order::from_node)?;
        Ok(OrderPage {
            cursor: page_cursor(PAGE, f, "cursor")?,
            begin_time: f.int("beginTime"),
            end_time: f.int("endTime"),
            page_size: f.int("pageSize"),
            orders,
            rejected,
        })
    }

    /// Whether this is the last page (`cursor == "nomore"`).
    pub fn is_last(&self) -> bool {
        self.cursor == NO_MORE
    }
}

#[cfg(test)]
mod tests;
