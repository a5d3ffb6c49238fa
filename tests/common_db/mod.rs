//! Database helpers for the store tests: a fresh SQLite file per test, a fresh Postgres
//! database per test when `KWAISHOP_TEST_PG_URL` is set, and records with every field filled.

#![allow(dead_code)] // each test binary uses a different part

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

use kwaishop_sync::api::records::{Item, Order, Refund, Sku};
use kwaishop_sync::store::{ShopRow, Store};
use sqlx::Connection;

/// The variable naming the Postgres server the suite also runs against.
pub const PG_URL_VAR: &str = "KWAISHOP_TEST_PG_URL";

/// A migrated store on a new SQLite file in a temporary directory (kept while the store is).
pub async fn sqlite_store() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite://{}", dir.path().join("mirror.db").display());
    let store = Store::connect(&url).await.expect("open the SQLite file");
    store.migrate().await.expect("migrate SQLite");
    (store, dir)
}

/// Runs `body` on a fresh, migrated SQLite store.
pub async fn on_sqlite<F, Fut>(body: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()>,
{
    let (store, _dir) = sqlite_store().await;
    body(store.clone()).await;
    store.close().await;
}

/// [`on_sqlite`], also handing the body the file's URL (for a second, raw connection).
pub async fn on_sqlite_with_url<F, Fut>(body: F)
where
    F: FnOnce(Store, String) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite://{}", dir.path().join("mirror.db").display());
    let store = Store::connect(&url).await.expect("open the SQLite file");
    store.migrate().await.expect("migrate SQLite");
    body(store.clone(), url).await;
    store.close().await;
}

/// Runs `body` on a fresh, migrated Postgres database created for this test and dropped after
/// it (also when the body panics); says so on stderr and returns when the variable is unset.
pub async fn on_postgres<F, Fut>(body: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    on_postgres_with_url(|store, _url| body(store)).await;
}

/// [`on_postgres`], also handing the body the database's URL (for spawned processes).
pub async fn on_postgres_with_url<F, Fut>(body: F)
where
    F: FnOnce(Store, String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Ok(admin_url) = std::env::var(PG_URL_VAR) else {
        eprintln!("skipped: {PG_URL_VAR} not set");
        return;
    };
    let name = unique_name();
    let mut admin = sqlx::PgConnection::connect(&admin_url)
        .await
        .expect("connect to the test Postgres");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .expect("create the test database");
    let url = with_database(&admin_url, &name);
    let store = Store::connect(&url)
        .await
        .expect("connect to the test database");
    store.migrate().await.expect("migrate Postgres");
    let outcome = tokio::spawn(body(store.clone(), url)).await;
    store.close().await;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .expect("drop the test database");
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// A database name no other test (or test run) uses.
fn unique_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "kwaishop_t_{}_{}_{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// `url` with its database (the path) replaced by `name`, query kept.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    format!("{}/{name}{query}", &base[..path_start])
}

/// Adds the shop (the record tables reference `shops`).
pub async fn add_shop(store: &Store, shop_id: &str) {
    store
        .ensure_shop(&ShopRow::new(shop_id))
        .await
        .expect("add the shop");
}

/// An order with every field set (distinct per `oid`), a raw JSON that only byte-for-byte
/// storage keeps (odd spacing, escapes, CJK), and `gifts` gift sub-orders.
pub fn order(oid: i64, update_time: i64, gifts: usize) -> Order {
    let n = oid % 1_000;
    let mut order = Order {
        oid,
        parent_oid: None,
        sub_order_type: None,
        status: 30,
        create_time: 1_700_000_000_000 + n,
        update_time,
        pay_time: Some(1_700_000_001_000 + n),
        send_time: Some(1_700_000_002_000 + n),
        recv_time: Some(1_700_000_003_000 + n),
        refund_time: Some(1_700_000_004_000 + n),
        total_fee: 10_000 + n,
        discount_fee: 500 + n,
        express_fee: 800 + n,
        buyer_open_id: Some(format!("buyer-open-{n}")),
        buyer_nick: Some("买家 😀".into()),
        seller_open_id: Some("seller-open".into()),
        seller_nick: Some("卖家".into()),
        remark: Some("请尽快发货 \"quoted\"".into()),
        pay_type: Some(1),
        pay_channel: Some("WECHAT".into()),
        cps_type: Some(2),
        pre_sale: Some(0),
        co_type: Some(3),
        comment_status: Some(4),
        risk_code: Some(10_001),
        activity_types: vec![1, 7, 42],
        item_id: Some(900_000 + n),
        rel_item_id: Some(800_000 + n),
        sku_id: Some(700_000 + n),
        rel_sku_id: Some(600_000 + n),
        item_title: Some(format!("商品 {n}")),
        sku_desc: Some("红色; XL".into()),
        sku_nick: Some("red-xl".into()),
        item_pic_url: Some("https://img.example/p.jpg".into()),
        num: 2,
        original_price: 5_000,
        price: 4_500,
        item_discount_fee: 100,
        category_id: Some(1_234),
        category_name: Some("服装".into()),
        province: Some("浙江省".into()),
        city: Some("杭州市".into()),
        district: Some("西湖区".into()),
        town: Some("某街道".into()),
        masked_consignee: Some("张*".into()),
        masked_mobile: Some("138****0000".into()),
        masked_address: Some("某路**号".into()),
        encrypted_consignee: Some("#enc#c#".into()),
        encrypted_mobile: Some("#enc#m#".into()),
        encrypted_address: Some("#enc#a#".into()),
        packages: format!(r#"[{{"expressNo":"SF{n}","expressCode":4,"logisticsId":66}}]"#),
        express_no: Some(format!("SF{n}")),
        express_code: Some(5),
        logistics_id: Some(66),
        latest_refund_id: Some(77),
        latest_refund_status: Some(10),
        delivery_num: Some(1),
        package_num: Some(1),
        seller_role_type: Some(1),
        seller_role_id: Some(88),
        seller_role_name: Some("owner".into()),
        distributor_id: Some(99),
        distributor_name: Some("达人".into()),
        gifts: Vec::new(),
        raw: format!(
            "{{ \"orderBaseInfo\" :{{\"oid\":{oid},\"updateTime\":{update_time},\"remark\":\"\\u8bf7 尽快\"}} ,\n\t\"x\":1.50}}"
        ),
    };
    order.gifts = (1..=gifts as i64)
        .map(|g| Order {
            oid: oid * 10 + g,
            parent_oid: Some(oid),
            sub_order_type: Some(2),
            price: 0,
            item_title: Some(format!("赠品 {g}")),
            activity_types: Vec::new(),
            raw: format!(
                "{{\"subOrderBaseInfo\":{{\"oid\":{}}}, \"gift\" : true}}",
                oid * 10 + g
            ),
            ..order.clone()
        })
        .collect();
    order
}

/// A refund with every field set.
pub fn refund(refund_id: i64, update_time: i64) -> Refund {
    let n = refund_id % 1_000;
    Refund {
        refund_id,
        oid: 5_000 + n,
        item_id: Some(900_000 + n),
        sku_id: Some(700_000 + n),
        rel_item_id: Some(800_000 + n),
        rel_sku_id: Some(600_000 + n),
        sku_nick: Some("red-xl".into()),
        seller_id: Some(123_456_789),
        buyer_id: Some(987_654_321),
        buyer_open_id: Some("buyer-open".into()),
        handling_way: Some(1),
        status: 10,
        negotiate_status: Some(1),
        refund_type: Some(1),
        refund_fee: 4_500 + n,
        refund_reason: Some(3),
        refund_reason_desc: Some("不想要了".into()),
        refund_desc: Some("尺码不合适".into()),
        receipt_status: Some(2),
        special_refund_type: Some(0),
        create_time: 1_700_000_000_000 + n,
        update_time,
        submit_time: Some(1_700_000_001_000),
        negotiate_update_time: Some(1_700_000_002_000),
        end_time: Some(1_700_000_003_000),
        expire_time: Some(1_700_000_004_000),
        logistics_id: Some(55),
        express_no: Some("YT123".into()),
        raw: format!("{{\"refundId\": {refund_id} , \"updateTime\":{update_time},\"d\":\"退款\"}}"),
    }
}

/// An item with every field set and SKUs `sku_ids` (their `update_time` left to the item).
pub fn item(kwai_item_id: i64, update_time: i64, sku_ids: &[i64]) -> Item {
    Item {
        kwai_item_id,
        rel_item_id: Some(kwai_item_id + 1),
        user_id: Some(42),
        title: Some(format!("商品 {kwai_item_id}")),
        category_id: Some(1_234),
        category_name: Some("服装".into()),
        price: 4_500,
        volume: Some(17),
        item_status: Some(1),
        shelf_status: Some(1),
        audit_status: Some(2),
        item_type: Some(1),
        from_type: Some(0),
        main_image_url: Some("https://img.example/i.jpg".into()),
        link_url: Some("https://shop.example/i".into()),
        create_time: 1_700_000_000_000,
        update_time,
        skus: sku_ids
            .iter()
            .map(|&id| Sku {
                kwai_sku_id: id,
                kwai_item_id,
                rel_sku_id: Some(id + 1),
                sku_nick: Some(format!("sku-{id}")),
                specification: Some("颜色:红".into()),
                image_url: Some("https://img.example/s.jpg".into()),
                sku_stock: 10,
                reserve_stock: Some(1),
                sku_sale_price: 4_400,
                is_valid: Some(1),
                create_time: Some(1_700_000_000_000),
                update_time: None,
                raw: format!("{{\"kwaiSkuId\":{id}, \"skuStock\" : 10}}"),
            })
            .collect(),
        raw: format!(
            "{{\"kwaiItemId\":{kwai_item_id},\"updateTime\":{update_time}, \"t\":\"商品\"}}"
        ),
    }
}

/// Runs one statement on the database at `url` over a connection of its own, behind the store's
/// back (to make a gap a test then expects the product to heal). Returns the rows affected.
pub async fn execute(url: &str, sql: &str) -> u64 {
    let sql = sqlx::AssertSqlSafe(sql.to_string());
    if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(url)
            .await
            .expect("connect to the SQLite file");
        sqlx::query(sql)
            .execute(&mut c)
            .await
            .expect("execute")
            .rows_affected()
    } else {
        let mut c = sqlx::PgConnection::connect(url)
            .await
            .expect("connect to Postgres");
        sqlx::query(sql)
            .execute(&mut c)
            .await
            .expect("execute")
            .rows_affected()
    }
}

/// The one integer a query answers, over a connection of its own.
pub async fn fetch_i64(url: &str, sql: &str) -> i64 {
    let sql = sqlx::AssertSqlSafe(sql.to_string());
    let row: (i64,) = if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(url)
            .await
            .expect("connect to the SQLite file");
        sqlx::query_as(sql).fetch_one(&mut c).await.expect("query")
    } else {
        let mut c = sqlx::PgConnection::connect(url)
            .await
            .expect("connect to Postgres");
        sqlx::query_as(sql).fetch_one(&mut c).await.expect("query")
    };
    row.0
}
