//! Items edited (a price or a stock) and taken down upstream.

use rand::Rng;

use super::{Mutator, Step};
use crate::docs::{self, ItemDoc};
use crate::factory;
use crate::messages;
use crate::model::{Change, Doc, ShopData};

impl Mutator {
    pub(super) fn edit_item(
        &mut self,
        s: usize,
        shop: &mut ShopData,
        t: i64,
        out: &mut Vec<Change>,
    ) {
        self.schedule_arrival(s, t, self.params.item_changes_per_day, Step::EditItem);
        let n = shop.items.len();
        if n == 0 {
            return;
        }
        let Some(doc) = shop.items.values().nth(self.rng.random_range(0..n)) else {
            return;
        };
        let Some(mut item) = docs::parse::<ItemDoc>(doc).filter(|i| !i.sku_list.is_empty()) else {
            return;
        };
        let u = t.max(doc.update_time + 1);
        let k = self.rng.random_range(0..item.sku_list.len());
        let sku = &mut item.sku_list[k];
        if self.rng.random_bool(0.5) {
            let old = sku.sku_sale_price;
            let new = factory::round_jiao(old as f64 * self.rng.random_range(0.8..1.2)).max(100);
            sku.sku_sale_price = if new == old { old + 100 } else { new };
        } else {
            sku.sku_stock = if self.rng.random_bool(0.1) {
                0
            } else {
                self.rng.random_range(1..1000)
            };
        }
        sku.update_time = u;
        item.update_time = u;
        item.price = item.min_sku_price();
        let new_doc = Doc {
            id: doc.id,
            create_time: doc.create_time,
            update_time: u,
            json: docs::raw(&item),
            detail_extra: doc.detail_extra.clone(),
        };
        shop.items.insert(new_doc.id, new_doc);
        out.push(messages::item_message(
            s,
            messages::ITEM_CHANGE,
            item.kwai_item_id,
            item.user_id,
            u,
        ));
    }

    pub(super) fn take_down_item(
        &mut self,
        s: usize,
        shop: &mut ShopData,
        t: i64,
        out: &mut Vec<Change>,
    ) {
        self.schedule_arrival(s, t, self.params.item_takedowns_per_day, Step::TakeDownItem);
        // The last item stays, so the shop can still take orders.
        let n = shop.items.len();
        if n <= 1 {
            return;
        }
        let Some(&id) = shop.items.keys().nth(self.rng.random_range(0..n)) else {
            return;
        };
        let Some(doc) = shop.items.remove(&id) else {
            return;
        };
        let u = t.max(doc.update_time + 1);
        shop.deleted_items.insert(id, (doc, u));
        out.push(messages::item_message(
            s,
            messages::ITEM_DELETE,
            id,
            shop.identity.seller_id,
            u,
        ));
    }
}
