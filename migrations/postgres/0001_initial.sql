-- kwaishop-sync initial schema (Postgres). Keep table and column names identical to
-- migrations/sqlite/0001_initial.sql: one test suite runs against both.
-- Money is fen, times are epoch ms, ids are 64-bit, raw JSON is verbatim TEXT.

CREATE TABLE shops (
    shop_id            TEXT    NOT NULL PRIMARY KEY,
    open_id            TEXT,
    seller_id          BIGINT,
    name               TEXT,
    status             TEXT    NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'needs_reauth')),
    status_reason      TEXT,
    quota_paused_until BIGINT,
    created_at         BIGINT  NOT NULL,
    updated_at         BIGINT  NOT NULL
);

CREATE TABLE oauth_tokens (
    shop_id            TEXT    NOT NULL PRIMARY KEY REFERENCES shops (shop_id),
    access_token       TEXT    NOT NULL,
    access_expires_at  BIGINT  NOT NULL,
    refresh_token      TEXT    NOT NULL,
    refresh_expires_at BIGINT  NOT NULL,
    open_id            TEXT    NOT NULL,
    scopes             TEXT    NOT NULL, -- JSON array of strings
    updated_at         BIGINT  NOT NULL
);

-- One row per order line; gift sub-orders are rows of their own with parent_oid set.
CREATE TABLE orders (
    shop_id              TEXT    NOT NULL REFERENCES shops (shop_id),
    oid                  BIGINT  NOT NULL,
    parent_oid           BIGINT,
    sub_order_type       BIGINT,
    status               BIGINT  NOT NULL,
    create_time          BIGINT  NOT NULL,
    update_time          BIGINT  NOT NULL,
    pay_time             BIGINT,
    send_time            BIGINT,
    recv_time            BIGINT,
    refund_time          BIGINT,
    total_fee            BIGINT  NOT NULL,
    discount_fee         BIGINT  NOT NULL,
    express_fee          BIGINT  NOT NULL,
    buyer_open_id        TEXT,
    buyer_nick           TEXT,
    seller_open_id       TEXT,
    seller_nick          TEXT,
    remark               TEXT,
    pay_type             BIGINT,
    pay_channel          TEXT,
    cps_type             BIGINT,
    pre_sale             BIGINT,
    co_type              BIGINT,
    comment_status       BIGINT,
    risk_code            BIGINT,
    activity_types       TEXT    NOT NULL, -- JSON array of integers
    item_id              BIGINT,
    rel_item_id          BIGINT,
    sku_id               BIGINT,
    rel_sku_id           BIGINT,
    item_title           TEXT,
    sku_desc             TEXT,
    sku_nick             TEXT,
    item_pic_url         TEXT,
    num                  BIGINT  NOT NULL,
    original_price       BIGINT  NOT NULL,
    price                BIGINT  NOT NULL,
    item_discount_fee    BIGINT  NOT NULL,
    category_id          BIGINT,
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
    express_code         BIGINT,
    logistics_id         BIGINT,
    latest_refund_id     BIGINT,
    latest_refund_status BIGINT,
    delivery_num         BIGINT,
    package_num          BIGINT,
    seller_role_type     BIGINT,
    seller_role_id       BIGINT,
    seller_role_name     TEXT,
    distributor_id       BIGINT,
    distributor_name     TEXT,
    raw                  TEXT    NOT NULL,
    source               TEXT    NOT NULL CHECK (source IN ('poll', 'push', 'detail', 'resync')),
    synced_at            BIGINT  NOT NULL,
    PRIMARY KEY (shop_id, oid)
);
CREATE INDEX orders_by_create_time ON orders (shop_id, create_time);
CREATE INDEX orders_by_pay_time ON orders (shop_id, pay_time);
CREATE INDEX orders_by_status ON orders (shop_id, status);
CREATE INDEX orders_by_parent ON orders (shop_id, parent_oid);

CREATE TABLE refunds (
    shop_id               TEXT    NOT NULL REFERENCES shops (shop_id),
    refund_id             BIGINT  NOT NULL,
    oid                   BIGINT  NOT NULL,
    item_id               BIGINT,
    sku_id                BIGINT,
    rel_item_id           BIGINT,
    rel_sku_id            BIGINT,
    sku_nick              TEXT,
    seller_id             BIGINT,
    buyer_id              BIGINT,
    buyer_open_id         TEXT,
    handling_way          BIGINT,
    status                BIGINT  NOT NULL,
    negotiate_status      BIGINT,
    refund_type           BIGINT,
    refund_fee            BIGINT  NOT NULL,
    refund_reason         BIGINT,
    refund_reason_desc    TEXT,
    refund_desc           TEXT,
    receipt_status        BIGINT,
    special_refund_type   BIGINT,
    create_time           BIGINT  NOT NULL,
    update_time           BIGINT  NOT NULL,
    submit_time           BIGINT,
    negotiate_update_time BIGINT,
    end_time              BIGINT,
    expire_time           BIGINT,
    logistics_id          BIGINT,
    express_no            TEXT,
    raw                   TEXT    NOT NULL,
    source                TEXT    NOT NULL CHECK (source IN ('poll', 'push', 'detail', 'resync')),
    synced_at             BIGINT  NOT NULL,
    PRIMARY KEY (shop_id, refund_id)
);
CREATE INDEX refunds_by_oid ON refunds (shop_id, oid);
CREATE INDEX refunds_by_create_time ON refunds (shop_id, create_time);
CREATE INDEX refunds_by_status ON refunds (shop_id, status);

CREATE TABLE items (
    shop_id        TEXT    NOT NULL REFERENCES shops (shop_id),
    kwai_item_id   BIGINT  NOT NULL,
    rel_item_id    BIGINT,
    user_id        BIGINT,
    title          TEXT,
    category_id    BIGINT,
    category_name  TEXT,
    price          BIGINT  NOT NULL,
    volume         BIGINT,
    item_status    BIGINT,
    shelf_status   BIGINT,
    audit_status   BIGINT,
    item_type      BIGINT,
    from_type      BIGINT,
    main_image_url TEXT,
    link_url       TEXT,
    create_time    BIGINT  NOT NULL,
    update_time    BIGINT  NOT NULL,
    raw            TEXT    NOT NULL,
    source         TEXT    NOT NULL CHECK (source IN ('poll', 'push', 'detail', 'resync')),
    synced_at      BIGINT  NOT NULL,
    seen_scan      BIGINT, -- the last full scan that listed the item
    deleted_at     BIGINT, -- set when a completed scan no longer listed it
    PRIMARY KEY (shop_id, kwai_item_id)
);
CREATE INDEX items_by_create_time ON items (shop_id, create_time);
CREATE INDEX items_by_status ON items (shop_id, item_status);

CREATE TABLE skus (
    shop_id        TEXT    NOT NULL REFERENCES shops (shop_id),
    kwai_sku_id    BIGINT  NOT NULL,
    kwai_item_id   BIGINT  NOT NULL,
    rel_sku_id     BIGINT,
    sku_nick       TEXT,
    specification  TEXT,
    image_url      TEXT,
    sku_stock      BIGINT  NOT NULL,
    reserve_stock  BIGINT,
    sku_sale_price BIGINT  NOT NULL,
    is_valid       BIGINT,
    create_time    BIGINT,
    update_time    BIGINT,
    raw            TEXT    NOT NULL,
    -- The version the upsert guard compares: update_time, else the item's update_time.
    version        BIGINT  NOT NULL,
    source         TEXT    NOT NULL CHECK (source IN ('poll', 'push', 'detail', 'resync')),
    synced_at      BIGINT  NOT NULL,
    deleted_at     BIGINT,
    PRIMARY KEY (shop_id, kwai_sku_id)
);
CREATE INDEX skus_by_item ON skus (shop_id, kwai_item_id);

CREATE TABLE sync_state (
    shop_id          TEXT    NOT NULL REFERENCES shops (shop_id),
    stream           TEXT    NOT NULL CHECK (stream IN ('orders', 'refunds', 'items')),
    checkpoint_ms    BIGINT,
    window_begin_ms  BIGINT,
    window_end_ms    BIGINT,
    cursor           TEXT,
    scan_id          BIGINT,
    last_success_ms  BIGINT,
    last_error       TEXT,
    last_error_at_ms BIGINT,
    paused_until_ms  BIGINT,
    rows_total       BIGINT  NOT NULL DEFAULT 0 CHECK (rows_total >= 0),
    updated_at_ms    BIGINT  NOT NULL,
    PRIMARY KEY (shop_id, stream)
);

CREATE TABLE sync_runs (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    shop_id        TEXT    NOT NULL REFERENCES shops (shop_id),
    stream         TEXT    NOT NULL CHECK (stream IN ('orders', 'refunds', 'items')),
    kind           TEXT    NOT NULL,
    started_at_ms  BIGINT  NOT NULL,
    finished_at_ms BIGINT,
    outcome        TEXT,
    pages          BIGINT  NOT NULL DEFAULT 0,
    rows           BIGINT  NOT NULL DEFAULT 0,
    calls          BIGINT  NOT NULL DEFAULT 0,
    error          TEXT
);
CREATE INDEX sync_runs_by_shop ON sync_runs (shop_id, id);

-- Calls per shop, China-time day number and API method (the daily quota, I7).
CREATE TABLE api_usage (
    shop_id TEXT    NOT NULL REFERENCES shops (shop_id),
    day     BIGINT  NOT NULL,
    method  TEXT    NOT NULL,
    calls   BIGINT  NOT NULL,
    PRIMARY KEY (shop_id, day, method)
);
