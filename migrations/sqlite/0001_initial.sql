-- kwaishop-sync initial schema (SQLite). Keep table and column names identical to
-- migrations/postgres/0001_initial.sql: one test suite runs against both.
-- Money is fen, times are epoch ms, ids are 64-bit, raw JSON is verbatim TEXT.

CREATE TABLE shops (
    shop_id            TEXT    NOT NULL PRIMARY KEY,
    open_id            TEXT,
    seller_id          INTEGER,
    name               TEXT,
    status             TEXT    NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'needs_reauth')),
    status_reason      TEXT,
    quota_paused_until INTEGER,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
);

CREATE TABLE oauth_tokens (
    shop_id            TEXT    NOT NULL PRIMARY KEY REFERENCES shops (shop_id),
    access_token       TEXT    NOT NULL,
    access_expires_at  INTEGER NOT NULL,
    refresh_token      TEXT    NOT NULL,
    refresh_expires_at INTEGER NOT NULL,
    open_id            TEXT    NOT NULL,
    scopes             TEXT    NOT NULL, -- JSON array of strings
    updated_at         INTEGER NOT NULL
);

-- One row per order line; gift sub-orders are rows of their own with parent_oid set.
CREATE TABLE orders (
    shop_id              TEXT    NOT NULL REFERENCES shops (shop_id),
    oid                  INTEGER NOT NULL,
    parent_oid           INTEGER,
    sub_order_type       INTEGER,
    status               INTEGER NOT NULL,
    create_time          INTEGER NOT NULL,
    update_time          INTEGER NOT NULL,
    pay_time             INTEGER,
    send_time            INTEGER,
    recv_time            INTEGER,
    refund_time          INTEGER,
    total_fee            INTEGER NOT NULL,
    discount_fee         INTEGER NOT NULL,
    express_fee          INTEGER NOT NULL,
    buyer_open_id        TEXT,
    buyer_nick           TEXT,
    seller_open_id       TEXT,
    seller_nick          TEXT,
    remark               TEXT,
    pay_type             INTEGER,
    pay_channel          TEXT,
    cps_type             INTEGER,
    pre_sale             INTEGER,
    co_type              INTEGER,
    comment_status       INTEGER,
    risk_code            INTEGER,
    activity_types       TEXT    NOT NULL, -- JSON array of integers
    item_id              INTEGER,
    rel_item_id          INTEGER,
    sku_id               INTEGER,
    rel_sku_id           INTEGER,
    item_title           TEXT,
    sku_desc             TEXT,
    sku_nick             TEXT,
    item_pic_url         TEXT,
    num                  INTEGER NOT NULL,
    original_price       INTEGER NOT NULL,
    price                INTEGER NOT NULL,
    item_discount_fee    INTEGER NOT NULL,
    category_id          INTEGER,
    category_name        TEXT,
    province             TEXT,
    city                 TEXT,
    district             TEXT,
    town                 TEXT,
    masked_consignee     TEXT,
    masked_mobile        TEXT,
    masked_address       TEXT,
    encrypted_consignee  TEXT,
    encrypted_mobile     TEXT,
    encrypted_address    TEXT,
    express_no           TEXT,
    express_code         INTEGER,
    logistics_id         INTEGER,
    latest_refund_id     INTEGER,
    latest_refund_status INTEGER,
    delivery_num         INTEGER,
    package_num          INTEGER,
    seller_role_type     INTEGER,
    seller_role_id       INTEGER,
    seller_role_name     TEXT,
    distributor_id       INTEGER,
    distributor_name     TEXT,
    raw                  TEXT    NOT NULL,
    source               TEXT    NOT NULL CHECK (source IN ('poll', 'push', 'detail', 'resync')),
    synced_at            INTEGER NOT NULL,
    PRIMARY KEY (shop_id, oid)
);
CREATE INDEX orders_by_create_time ON orders (shop_id, create_time);
CREATE INDEX orders_by_pay_time ON orders (shop_id, pay_time);
CREATE INDEX orders_by_status ON orders (shop_id, status);
CREATE INDEX orders_by_parent ON orders (shop_id, parent_oid);

CREATE TABLE refunds (
    shop_id               TEXT    NOT NULL REFERENCES shops (shop_id),
    refund_id             INTEGER NOT NULL,
    oid                   INTEGER NOT NULL,
    item_id               INTEGER,
    sku_id                INTEGER,
    rel_item_id           INTEGER,
    rel_sku_id            INTEGER,
    sku_nick              TEXT,
    seller_id             INTEGER,
    buyer_id              INTEGER,
    buyer_open_id         TEXT,
    handling_way          INTEGER,
    status                INTEGER NOT NULL,
    negotiate_status      INTEGER,
    refund_type           INTEGER,
    refund_fee            INTEGER NOT NULL,
    refund_reason         INTEGER,
    refund_reason_desc    TEXT,
    refund_desc           TEXT,
    receipt_status        INTEGER,
    special_refund_type   INTEGER,
    create_time           INTEGER NOT NULL,
    update_time           INTEGER NOT NULL,
    submit_time           INTEGER,
    negotiate_update_time INTEGER,
    end_time              INTEGER,
    expire_time           INTEGER,
    logistics_id          INTEGER,
    express_no            TEXT,
    raw                   TEXT    NOT NULL,
    source                TEXT    NOT NULL CHECK (source IN ('poll', 'push', 'detail', 'resync')),
    synced_at             INTEGER NOT NULL,
    PRIMARY KEY (shop_id, refund_id)
);
CREATE INDEX refunds_by_oid ON refunds (shop_id, oid);
CREATE INDEX refunds_by_create_time ON refunds (shop_id, create_time);
CREATE INDEX refunds_by_status ON refunds (shop_id, status);

CREATE TABLE items (
    shop_id        TEXT    NOT NULL REFERENCES shops (shop_id),
    kwai_item_id   INTEGER NOT NULL,
    rel_item_id    INTEGER,
    user_id        INTEGER,
    title          TEXT,
    category_id    INTEGER,
    category_name  TEXT,
    price          INTEGER NOT NULL,
    volume         INTEGER,
    item_status    INTEGER,
    shelf_status   INTEGER,
    audit_status   INTEGER,
    item_type      INTEGER,
    from_type      INTEGER,
    main_image_url TEXT,
    link_url       TEXT,
    create_time    INTEGER NOT NULL,
    update_time    INTEGER NOT NULL,
    raw            TEXT    NOT NULL,
    source         TEXT    NOT NULL CHECK (source IN ('poll', 'push', 'detail', 'resync')),
    synced_at      INTEGER NOT NULL,
    seen_scan      INTEGER, -- the last full scan that listed the item
    deleted_at     INTEGER, -- set when a completed scan no longer listed it
    PRIMARY KEY (shop_id, kwai_item_id)
);
CREATE INDEX items_by_create_time ON items (shop_id, create_time);
CREATE INDEX items_by_status ON items (shop_id, item_status);

CREATE TABLE skus (
    shop_id        TEXT    NOT NULL REFERENCES shops (shop_id),
    kwai_sku_id    INTEGER NOT NULL,
    kwai_item_id   INTEGER NOT NULL,
    rel_sku_id     INTEGER,
    sku_nick       TEXT,
    specification  TEXT,
    image_url      TEXT,
    sku_stock      INTEGER NOT NULL,
    reserve_stock  INTEGER,
    sku_sale_price INTEGER NOT NULL,
    is_valid       INTEGER,
    create_time    INTEGER,
    update_time    INTEGER,
    raw            TEXT    NOT NULL,
    -- The version the upsert guard compares: update_time, else the item's update_time.
    version        INTEGER NOT NULL,
    source         TEXT    NOT NULL CHECK (source IN ('poll', 'push', 'detail', 'resync')),
    synced_at      INTEGER NOT NULL,
    deleted_at     INTEGER,
    PRIMARY KEY (shop_id, kwai_sku_id)
);
CREATE INDEX skus_by_item ON skus (shop_id, kwai_item_id);

CREATE TABLE sync_state (
    shop_id          TEXT    NOT NULL REFERENCES shops (shop_id),
    stream           TEXT    NOT NULL CHECK (stream IN ('orders', 'refunds', 'items')),
    checkpoint_ms    INTEGER,
    window_begin_ms  INTEGER,
    window_end_ms    INTEGER,
    cursor           TEXT,
    scan_id          INTEGER,
    last_success_ms  INTEGER,
    last_error       TEXT,
    last_error_at_ms INTEGER,
    paused_until_ms  INTEGER,
    rows_total       INTEGER NOT NULL DEFAULT 0 CHECK (rows_total >= 0),
    updated_at_ms    INTEGER NOT NULL,
    PRIMARY KEY (shop_id, stream)
);

CREATE TABLE sync_runs (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    shop_id        TEXT    NOT NULL REFERENCES shops (shop_id),
    stream         TEXT    NOT NULL CHECK (stream IN ('orders', 'refunds', 'items')),
    kind           TEXT    NOT NULL,
    started_at_ms  INTEGER NOT NULL,
    finished_at_ms INTEGER,
    outcome        TEXT,
    pages          INTEGER NOT NULL DEFAULT 0,
    rows           INTEGER NOT NULL DEFAULT 0,
    calls          INTEGER NOT NULL DEFAULT 0,
    error          TEXT
);
CREATE INDEX sync_runs_by_shop ON sync_runs (shop_id, id);

-- Calls per shop, China-time day number and API method (the daily quota, I7).
CREATE TABLE api_usage (
    shop_id TEXT    NOT NULL REFERENCES shops (shop_id),
    day     INTEGER NOT NULL,
    method  TEXT    NOT NULL,
    calls   INTEGER NOT NULL,
    PRIMARY KEY (shop_id, day, method)
);
