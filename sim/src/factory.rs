//! Builders for new records: platform-unique ids, shop identities, items with SKUs, buyers,
//! orders as created and refunds as opened. The generator and the mutation clock both make
//! records here, so a live order looks like a historical one.
//!
//! Buyer data is fake: masked names and numbers and opaque ciphertext drawn from the rng.

use std::collections::HashSet;
use std::ops::Range;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::catalog::{self, PRODUCTS, Product};
use super::docs::{ItemDoc, SkuDoc, SkuProp};
use super::model::ShopIdentity;
use super::variants::OrderIds;

mod orders;

pub use orders::{OrderLine, new_order, new_refund, payment, return_waybill, waybill};

/// 16-digit ids (refundId; oids, [`IdPool::oid`]), below 2^53 so JavaScript clients keep them exact.
pub const LONG_IDS: Range<i64> = 1_000_000_000_000_000..9_000_000_000_000_000;
/// How many oids one day's prefix leaves room for (eleven digits).
const DATED_OID_SPAN: i64 = 100_000_000_000;
/// 11–13 digit ids (kwaiItemId, kwaiSkuId).
pub const ITEM_IDS: Range<i64> = 10_000_000_000..10_000_000_000_000;
/// 10-digit Kuaishou user ids (sellerId, distributors).
pub const USER_IDS: Range<i64> = 1_000_000_000..10_000_000_000;

/// Host of every simulated URL; `.invalid` so nothing ever resolves.
const CDN: &str = "https://sim.kwaixiaodian.invalid";

/// Ids in use anywhere on the simulated platform; new ids are drawn until unused.
#[derive(Debug, Default)]
pub struct IdPool {
    used: HashSet<i64>,
    oids: OrderIds,
}

impl IdPool {
    /// An empty pool that makes oids as `oids` says.
    pub fn new(oids: OrderIds) -> Self {
        Self {
            used: HashSet::new(),
            oids,
        }
    }

    /// Marks an existing id as taken.
    pub fn reserve(&mut self, id: i64) {
        self.used.insert(id);
    }

    /// A new order id for an order placed at `t_ms`. [`OrderIds::Dated`]: the order's date in
    /// Beijing time, two digits of the year and three of the day of the year (the reference's
    /// observed oid `2607602240240301` was created on 2026-03-17, day 76), then eleven random
    /// digits; oids of one day are near each other, later days' larger.
    /// [`OrderIds::Random`]: any 16-digit id. Never one used before.
    pub fn oid(&mut self, rng: &mut impl Rng, t_ms: i64) -> i64 {
        use chrono::Datelike;
        if self.oids == OrderIds::Random {
            return self.fresh(rng, LONG_IDS);
        }
        let beijing = chrono::FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset");
        let day = chrono::DateTime::from_timestamp_millis(t_ms)
            .unwrap_or_default()
            .with_timezone(&beijing);
        let prefix = i64::from(day.year().rem_euclid(100)) * 1_000 + i64::from(day.ordinal());
        let base = prefix * DATED_OID_SPAN;
        self.fresh(rng, base..base + DATED_OID_SPAN)
    }

    /// A random id from `range` not used before.
    pub fn fresh(&mut self, rng: &mut impl Rng, range: Range<i64>) -> i64 {
        loop {
            let id = rng.random_range(range.clone());
            if self.used.insert(id) {
                return id;
            }
        }
    }
}

pub fn pick<'a, T>(rng: &mut impl Rng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

fn random_hex(rng: &mut impl Rng, bytes: usize) -> String {
    let raw: Vec<u8> = (0..bytes).map(|_| rng.random()).collect();
    hex::encode(raw)
}

fn random_base64(rng: &mut impl Rng, bytes: usize) -> String {
    let raw: Vec<u8> = (0..bytes).map(|_| rng.random()).collect();
    BASE64.encode(raw)
}

fn random_digits(rng: &mut impl Rng, len: usize) -> String {
    (0..len)
        .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
        .collect()
}

/// Rounds fen to whole jiao (10 fen), as shop prices are.
pub fn round_jiao(fen: f64) -> i64 {
    (fen / 10.0).round() as i64 * 10
}

/// A new shop's identity in the platform's namespaces.
pub fn new_identity(rng: &mut impl Rng, ids: &mut IdPool) -> ShopIdentity {
    const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let nick = format!(
        "{}{}{}",
        pick(rng, catalog::SHOP_NAME_HEADS),
        pick(rng, catalog::SHOP_NAME_BODIES),
        pick(rng, catalog::SHOP_NAME_TAILS)
    );
    ShopIdentity {
        open_id: random_hex(rng, 16),
        seller_id: ids.fresh(rng, USER_IDS),
        seller_open_id: (0..24).map(|_| char::from(*pick(rng, BASE62))).collect(),
        nick,
    }
}

/// A shop's selling context: who it is, its buyers and the influencers who sell for it.
#[derive(Debug)]
pub struct ShopContext {
    pub identity: ShopIdentity,
    buyer_seed: u64,
    buyer_pool: u64,
    distributors: Vec<(i64, String)>,
}

/// A buyer, derived from the shop's buyer seed and the buyer's index, so repeat buyers look the
/// same without being stored.
pub struct Buyer {
    open_id: String,
    nick: String,
    image: String,
    region: &'static catalog::Region,
    surname: &'static str,
    mobile: String,
    /// The stable search-index part of each ciphertext (consignee, mobile, address).
    index_keys: [String; 3],
}

impl ShopContext {
    pub fn new(
        identity: ShopIdentity,
        rng: &mut impl Rng,
        ids: &mut IdPool,
        buyer_pool: u64,
    ) -> Self {
        let distributors = (0..rng.random_range(3..=8))
            .map(|_| {
                let name = pick(rng, catalog::DISTRIBUTOR_NAMES).to_string();
                (ids.fresh(rng, USER_IDS), name)
            })
            .collect();
        Self {
            identity,
            buyer_seed: rng.random(),
            buyer_pool: buyer_pool.max(1),
            distributors,
        }
    }

    /// A buyer index, skewed so that some buyers come back often.
    pub fn random_buyer(&self, rng: &mut impl Rng) -> u64 {
        let u: f64 = rng.random();
        ((u * u * self.buyer_pool as f64) as u64).min(self.buyer_pool - 1)
    }

    pub fn buyer(&self, index: u64) -> Buyer {
        let mut rng =
            StdRng::seed_from_u64(self.buyer_seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let nick = if rng.random_bool(0.6) {
            format!("快手用户{}", random_digits(&mut rng, 10))
        } else {
            format!(
                "{}{}",
                pick(&mut rng, catalog::BUYER_NICK_HEADS),
                pick(&mut rng, catalog::BUYER_NICK_TAILS)
            )
        };
        Buyer {
            open_id: random_hex(&mut rng, 16),
            nick,
            image: format!("{CDN}/uhead/{}.jpg", random_hex(&mut rng, 8)),
            region: pick(&mut rng, catalog::REGIONS),
            surname: catalog::SURNAMES[rng.random_range(0..catalog::SURNAMES.len())],
            mobile: format!(
                "{}****{}",
                pick(&mut rng, catalog::MOBILE_PREFIXES),
                random_digits(&mut rng, 4)
            ),
            index_keys: [0; 3].map(|_| random_base64(&mut rng, 9)),
        }
    }
}

/// A new item with 1–6 SKUs, created at `created` and last edited no later than `latest`.
pub fn new_item(
    rng: &mut impl Rng,
    ids: &mut IdPool,
    user_id: i64,
    created: i64,
    latest: i64,
) -> ItemDoc {
    let product: &Product = pick(rng, PRODUCTS);
    let title = format!(
        "{}{}{}",
        pick(rng, catalog::TITLE_PREFIXES),
        product.title,
        pick(rng, catalog::TITLE_SUFFIXES)
    );
    let kwai_item_id = ids.fresh(rng, ITEM_IDS);
    let via_api = rng.random_bool(0.3);
    let update_time = rng.random_range(created..=latest.max(created));
    let code = format!("A{}", random_digits(rng, 4));
    let base_price = rng.random_range(product.price_fen.0..=product.price_fen.1) as f64;
    let basis = SkuBasis {
        kwai_item_id,
        via_api,
        code: &code,
        base_price,
        created,
        update_time,
    };
    let sku_list = draw_specs(rng, product)
        .iter()
        .enumerate()
        .map(|(i, props)| new_sku(rng, ids, &basis, i, props))
        .collect::<Vec<_>>();
    let images = rng.random_range(1..=5);
    let mut item = ItemDoc {
        kwai_item_id,
        rel_item_id: if via_api {
            rng.random_range(USER_IDS)
        } else {
            0
        },
        user_id,
        title: title.clone(),
        details: format!("<p>{title}</p><p>规格、材质详见商品图片</p>"),
        main_image_url: format!("{CDN}/item/{kwai_item_id}/0.jpg"),
        image_urls: (0..images)
            .map(|i| format!("{CDN}/item/{kwai_item_id}/{i}.jpg"))
            .collect(),
        link_url: format!("{CDN}/merchant/shop/detail?id={kwai_item_id}"),
        category_id: product.category_id,
        category_name: product.category.to_string(),
        price: 0,
        volume: 0,
        item_status: 1,
        shelf_status: i32::from(rng.random_bool(0.9)),
        audit_status: 2,
        from_type: i32::from(via_api),
        appkey: String::new(),
        express_template_id: rng.random_range(10_000_000..100_000_000),
        item_type: 1,
        multiple_stock: false,
        create_time: created,
        update_time,
        sku_list,
    };
    item.price = item.min_sku_price();
    item
}

/// What a new item's SKUs take from it.
struct SkuBasis<'a> {
    kwai_item_id: i64,
    /// Created through the API: SKUs carry the merchant's own ids.
    via_api: bool,
    /// The item's code, which SKU nicks extend.
    code: &'a str,
    base_price: f64,
    created: i64,
    /// The item's last edit; no SKU was edited later.
    update_time: i64,
}

/// 1–6 of the product's spec combinations, drawn without repeats, one per SKU.
fn draw_specs(rng: &mut impl Rng, product: &Product) -> Vec<Vec<SkuProp>> {
    let mut combos = spec_combinations(product);
    let sku_count = rng.random_range(1..=6).min(combos.len());
    for i in 0..sku_count {
        let j = rng.random_range(i..combos.len());
        combos.swap(i, j);
    }
    combos.truncate(sku_count);
    combos
}

/// The item's SKU number `i` (from 0), with the spec values `props`.
fn new_sku(
    rng: &mut impl Rng,
    ids: &mut IdPool,
    basis: &SkuBasis<'_>,
    i: usize,
    props: &[SkuProp],
) -> SkuDoc {
    let SkuBasis {
        kwai_item_id,
        via_api,
        code,
        base_price,
        created,
        update_time,
    } = *basis;
    SkuDoc {
        kwai_sku_id: ids.fresh(rng, ITEM_IDS),
        rel_sku_id: if via_api {
            rng.random_range(USER_IDS)
        } else {
            0
        },
        sku_stock: if rng.random_bool(0.05) {
            0
        } else {
            rng.random_range(1..1000)
        },
        reserve_stock: 0,
        sku_sale_price: round_jiao(base_price * rng.random_range(0.9..1.3)).max(100),
        sku_nick: format!("{code}-{:02}", i + 1),
        specification: props
            .iter()
            .map(|p| p.prop_value_name.as_str())
            .collect::<Vec<_>>()
            .join(" "),
        image_url: format!("{CDN}/sku/{kwai_item_id}/{}.jpg", i + 1),
        is_valid: 1,
        gtin_code: String::new(),
        goods_id: 0,
        goods_code: Vec::new(),
        sku_prop: props.to_vec(),
        create_time: created,
        update_time: rng.random_range(created..=update_time),
        kwai_item_id,
        appkey: String::new(),
    }
}

/// Every combination of the product's spec values, as SKU properties.
fn spec_combinations(product: &Product) -> Vec<Vec<SkuProp>> {
    let mut combos: Vec<Vec<SkuProp>> = vec![Vec::new()];
    for (name, values) in product.props {
        combos = combos
            .into_iter()
            .flat_map(|combo| {
                values.iter().map(move |value| {
                    let mut next = combo.clone();
                    next.push(SkuProp {
                        prop_name: name.to_string(),
                        prop_value_name: value.to_string(),
                    });
                    next
                })
            })
            .collect();
    }
    combos
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_oid_begins_with_its_order_date_in_beijing() {
        let mut ids = IdPool::new(OrderIds::Dated);
        let mut rng = StdRng::seed_from_u64(1);
        // 2026-03-17 02:35:42 UTC: 10:35 in Beijing, day 76 of 2026, as the observed oid.
        let oid = ids.oid(&mut rng, 1_773_714_942_425);
        assert_eq!(oid / DATED_OID_SPAN, 26_076, "{oid}");
        assert_eq!(oid.to_string().len(), 16);
        // 2026-12-31 17:00 UTC is already 2027-01-01 in Beijing.
        let oid = ids.oid(&mut rng, 1_798_736_400_000);
        assert_eq!(oid / DATED_OID_SPAN, 27_001, "{oid}");
        // Never the same id twice within a day.
        let same_day: HashSet<i64> = (0..1_000)
            .map(|_| ids.oid(&mut rng, 1_773_714_942_425))
            .collect();
        assert_eq!(same_day.len(), 1_000);
        let mut random = IdPool::new(OrderIds::Random);
        let days: HashSet<i64> = (0..100)
            .map(|_| random.oid(&mut rng, 1_773_714_942_425) / DATED_OID_SPAN)
            .collect();
        assert!(days.len() > 50, "{days:?}");
    }
}
