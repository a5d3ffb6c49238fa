//! The seeded data generator: shops with items and SKUs, and the history of their orders and
//! refunds over the last `days`, each document showing the state it reached by "now".
//!
//! Every order gets its own rng (seeded from the shop's order seed and its index), which first
//! plans the order's whole life — payment, shipping, receipt, success, a refund and its steps —
//! and then draws the document's content while the plan is replayed up to "now". Planning is
//! cheap, so the generator plans every order twice: once to find each order's latest change and
//! make some of them coincide (orders sharing an `updateTime` are realistic and the list cursor
//! must cope), then again to build the documents. Nothing but the documents is kept.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::docs::{self, ItemDoc};
use super::factory::{self, IdPool, OrderLine, ShopContext};
use super::lifecycle::{self, HOUR_MS, OrderStep, Stage};
use super::model::{Doc, ShopData};
use super::variants::OrderIds;
use crate::clock::DAY_MS;

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenParams {
    pub seed: u64,
    /// Number of shops.
    pub shops: usize,
    /// History length: orders are created uniformly over [now − days, now).
    pub days: u32,
    /// Orders per shop (top-level orders; gifts are extra sub-orders inside).
    pub orders: usize,
    /// Items per shop, each with 1–6 SKUs (at least one item is always made).
    pub items: usize,
    /// Share of paid orders that get a refund.
    pub refund_rate: f64,
    /// Share of orders carrying a gift sub-order.
    pub gift_rate: f64,
    /// The simulator clock's "now" at generation.
    pub now_ms: i64,
    /// How order ids are made.
    pub oids: OrderIds,
}

impl GenParams {
    /// Parameters with `orders / 30` items (within 20–2000) and the default rates.
    pub fn new(seed: u64, shops: usize, days: u32, orders: usize, now_ms: i64) -> Self {
        Self {
            seed,
            shops,
            days,
            orders,
            items: (orders / 30).clamp(20, 2000),
            refund_rate: 0.12,
            gift_rate: 0.03,
            now_ms,
            oids: OrderIds::default(),
        }
    }

    /// The first instant of the history window.
    fn window_start(&self) -> i64 {
        self.now_ms - (i64::from(self.days) * DAY_MS).max(1)
    }
}

/// Share of orders whose latest change is moved onto the preceding order's update time; each tie
/// joins two orders, so about twice this share ends up sharing an `updateTime`.
const TIE_SHARE: f64 = 0.026;
/// Only update times this close are joined, so a moved step stays plausible.
const TIE_MAX_GAP_MS: i64 = 6 * HOUR_MS;

/// Something that happens to an order (or its refund) at a planned time.
#[derive(Debug, Clone, Copy)]
enum Event {
    Create,
    Order(OrderStep),
    RefundOpen { handling_way: i32, stage: Stage },
    Refund(i32),
}

/// An order's whole planned life, sorted by time.
type Plan = Vec<(i64, Event)>;

/// Generates the shops. Deterministic for the same parameters.
pub fn generate(params: &GenParams) -> Vec<ShopData> {
    let mut rng = StdRng::seed_from_u64(params.seed);
    let mut ids = IdPool::new(params.oids);
    (0..params.shops)
        .map(|_| generate_shop(params, &mut rng, &mut ids))
        .collect()
}

fn generate_shop(params: &GenParams, rng: &mut StdRng, ids: &mut IdPool) -> ShopData {
    let now = params.now_ms;
    let start = params.window_start();
    let identity = factory::new_identity(rng, ids);
    let buyer_pool = (params.orders as u64 / 3).max(50);
    let ctx = ShopContext::new(identity, rng, ids, buyer_pool);
    let mut items: Vec<ItemDoc> = (0..params.items.max(1))
        .map(|_| {
            let created = start - rng.random_range(DAY_MS..=180 * DAY_MS);
            factory::new_item(rng, ids, ctx.identity.seller_id, created, now)
        })
        .collect();
    let mut creates: Vec<i64> = (0..params.orders)
        .map(|_| rng.random_range(start..now))
        .collect();
    creates.sort_unstable();
    let order_seed: u64 = rng.random();
    let moved = tie_latest_changes(params, order_seed, &creates, rng);

    let mut shop = ShopData::new(ctx.identity.clone());
    let mut history = History {
        params,
        ctx: &ctx,
        ids,
        items: &mut items,
        seen_buyers: vec![false; buyer_pool as usize],
        shop: &mut shop,
    };
    for (i, &create) in creates.iter().enumerate() {
        let mut order_rng = order_rng(order_seed, i);
        let mut plan = plan_order(&mut order_rng, create, params.refund_rate);
        if let Some(t) = moved[i] {
            retime_latest(&mut plan, now, t);
        }
        history.add_order(&mut order_rng, &plan);
    }
    for item in items {
        shop.items.insert(
            item.kwai_item_id,
            Doc {
                id: item.kwai_item_id,
                create_time: item.create_time,
                update_time: item.update_time,
                json: docs::raw(&item),
                detail_extra: docs::raw(&serde_json::Map::new()),
            },
        );
    }
    shop
}

fn order_rng(order_seed: u64, index: usize) -> StdRng {
    StdRng::seed_from_u64(order_seed ^ (index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// Plans an order created at `create`: payment or cancellation, maybe a refund, shipping,
/// receipt and success. A refund opened before shipping holds the shipment: if it succeeds the
/// order closes, if it is closed the order ships afterwards.
fn plan_order(rng: &mut impl Rng, create: i64, refund_rate: f64) -> Plan {
    let mut plan = vec![(create, Event::Create)];
    if rng.random_bool(lifecycle::NEVER_PAY_SHARE) {
        plan.push((
            create + lifecycle::PAY_DEADLINE_MS,
            Event::Order(OrderStep::Cancel),
        ));
        return plan;
    }
    let pay = create + lifecycle::pay_delay(rng);
    plan.push((pay, Event::Order(OrderStep::Pay)));
    let mut ship = Some(pay + lifecycle::ship_delay(rng));
    let receive_gap = lifecycle::receive_delay(rng);
    if rng.random_bool(refund_rate.clamp(0.0, 1.0)) {
        let open = pay + lifecycle::refund_open_delay(rng);
        let (held, end) = plan_refund(rng, &mut plan, open, ship, receive_gap);
        if held {
            // Shipping waited for the refund: closed → ship after it; refunded → order closed.
            ship = match end {
                (t, lifecycle::REFUNDED) => {
                    plan.push((t, Event::Order(OrderStep::CloseByRefund)));
                    None
                }
                (t, _) => Some(t + lifecycle::ship_delay(rng)),
            };
        }
    }
    if let Some(ship) = ship {
        let received = ship + receive_gap;
        plan.push((ship, Event::Order(OrderStep::Ship)));
        plan.push((received, Event::Order(OrderStep::Receive)));
        plan.push((
            received + lifecycle::SUCCESS_DELAY_MS,
            Event::Order(OrderStep::Succeed),
        ));
    }
    // Stable: events planned for the same instant keep their causal order.
    plan.sort_by_key(|&(t, _)| t);
    plan
}

/// Plans a refund opening at `open` and all its steps. Returns whether it opened before the
/// planned shipment (which then waits for it) and its final (time, status).
fn plan_refund(
    rng: &mut impl Rng,
    plan: &mut Plan,
    open: i64,
    ship: Option<i64>,
    receive_gap: i64,
) -> (bool, (i64, i32)) {
    let stage = match ship {
        Some(ship) if open >= ship + receive_gap => Stage::Received,
        Some(ship) if open >= ship => Stage::InTransit,
        _ => Stage::Unshipped,
    };
    let handling_way = lifecycle::choose_handling_way(rng, stage);
    let mut status = lifecycle::initial_refund_status(handling_way);
    let mut t = open;
    plan.push((
        t,
        Event::RefundOpen {
            handling_way,
            stage,
        },
    ));
    while let Some(next) = lifecycle::next_refund_status(rng, status, handling_way) {
        t += lifecycle::refund_step_delay(rng);
        status = next;
        plan.push((t, Event::Refund(status)));
    }
    (stage == Stage::Unshipped, (t, status))
}

/// The latest planned time not after `now`, and the latest one before it (if any).
fn latest_two(plan: &Plan, now: i64) -> (i64, Option<i64>) {
    let mut times = plan.iter().map(|&(t, _)| t).filter(|&t| t <= now).rev();
    let latest = times.next().unwrap_or(i64::MIN);
    (latest, times.find(|&t| t < latest))
}

/// Moves every event at the plan's latest time not after `now` to `t`.
fn retime_latest(plan: &mut Plan, now: i64, t: i64) {
    let (latest, _) = latest_two(plan, now);
    for event in plan.iter_mut().filter(|(time, _)| *time == latest) {
        event.0 = t;
    }
}

/// Picks orders whose latest change moves onto the update time of the order that changed just
/// before them, where that keeps their own history in order. Returns the new time per order.
fn tie_latest_changes(
    params: &GenParams,
    order_seed: u64,
    creates: &[i64],
    rng: &mut StdRng,
) -> Vec<Option<i64>> {
    let now = params.now_ms;
    let mut latest: Vec<(i64, Option<i64>, usize)> = creates
        .iter()
        .enumerate()
        .map(|(i, &create)| {
            let plan = plan_order(&mut order_rng(order_seed, i), create, params.refund_rate);
            let (time, previous) = latest_two(&plan, now);
            (time, previous, i)
        })
        .collect();
    latest.sort_unstable();
    let mut moved = vec![None; creates.len()];
    for j in 1..latest.len() {
        let target = latest[j - 1].0;
        let (time, previous, i) = latest[j];
        let chosen = rng.random_bool(TIE_SHARE);
        // An order with nothing but its creation keeps it: moving that would stretch its
        // payment deadline.
        if chosen && previous.is_some_and(|p| p <= target) && time - target <= TIE_MAX_GAP_MS {
            moved[i] = Some(target);
            latest[j].0 = target;
        }
    }
    moved
}

/// One shop's history being written.
struct History<'a> {
    params: &'a GenParams,
    ctx: &'a ShopContext,
    ids: &'a mut IdPool,
    items: &'a mut Vec<ItemDoc>,
    seen_buyers: Vec<bool>,
    shop: &'a mut ShopData,
}

impl History<'_> {
    /// Builds the order (and its refund) in the state `plan` reaches by now, and stores them.
    fn add_order(&mut self, rng: &mut StdRng, plan: &Plan) {
        let now = self.params.now_ms;
        let (item, sku, gift) = self.choose_goods(rng);
        let buyer = self.ctx.random_buyer(rng);
        let shop_new_buyer = !std::mem::replace(&mut self.seen_buyers[buyer as usize], true);
        let line = OrderLine {
            item: &self.items[item],
            sku: &self.items[item].sku_list[sku],
            gift: gift.map(|(i, s)| (&self.items[i], &self.items[i].sku_list[s])),
            buyer,
            shop_new_buyer,
        };
        let (mut order, extra) = factory::new_order(self.ctx, self.ids, rng, plan[0].0, &line);
        let mut refund = None;
        for &(t, event) in plan.iter().skip(1).take_while(|&&(t, _)| t <= now) {
            match event {
                Event::Create => {}
                Event::Order(step) => step.apply(&mut order, t, rng),
                Event::RefundOpen {
                    handling_way,
                    stage,
                } => {
                    let (opened, extra) = factory::new_refund(
                        self.ctx,
                        self.ids,
                        rng,
                        &order,
                        handling_way,
                        stage,
                        t,
                    );
                    lifecycle::show_refund_on_order(
                        &mut order,
                        &opened,
                        extra.special_refund_type,
                        t,
                    );
                    refund = Some((opened, extra));
                }
                Event::Refund(status) => {
                    if let Some((r, x)) = refund.as_mut() {
                        let back =
                            (status == lifecycle::RETURNED).then(|| factory::return_waybill(rng));
                        lifecycle::apply_refund_step(r, x, status, t, back);
                        lifecycle::show_refund_on_order(&mut order, r, x.special_refund_type, t);
                    }
                }
            }
        }
        let base = &order.order_base_info;
        if base.pay_time > 0 {
            self.items[item].volume += order.order_item_info.num;
        }
        self.shop.orders.put(Doc {
            id: base.oid,
            create_time: base.create_time,
            update_time: base.update_time,
            json: docs::raw(&order),
            detail_extra: docs::raw(&extra),
        });
        if let Some((r, x)) = refund {
            self.shop.refunds.put(Doc {
                id: r.refund_id,
                create_time: r.create_time,
                update_time: r.update_time,
                json: docs::raw(&r),
                detail_extra: docs::raw(&x),
            });
        }
    }

    /// (item, SKU, gift (item, SKU)) indexes; popular items sell more.
    fn choose_goods(&self, rng: &mut StdRng) -> (usize, usize, Option<(usize, usize)>) {
        let n = self.items.len();
        let u: f64 = rng.random();
        let item = ((u * u * n as f64) as usize).min(n - 1);
        let sku = rng.random_range(0..self.items[item].sku_list.len());
        let gift = (n > 1 && rng.random_bool(self.params.gift_rate.clamp(0.0, 1.0))).then(|| {
            let g = (item + rng.random_range(1..n)) % n;
            (g, rng.random_range(0..self.items[g].sku_list.len()))
        });
        (item, sku, gift)
    }
}

#[cfg(test)]
mod tests;
