//! Each section of the file validated into its settings: defaults filled in, every error
//! recorded with its field, values clamped to what the platform and the service allow.

use super::*;

pub(super) fn build_platform(cx: &mut Ctx, p: RawPlatform, push_enabled: bool) -> PlatformConfig {
    let app_key = p.app_key.unwrap_or_default();
    if app_key.trim().is_empty() {
        cx.err(
            "platform.app_key",
            "missing: the app key from the platform console (ks…)",
        );
    }
    let sign_method = match p.sign_method.as_deref() {
        None => SignMethod::HmacSha256,
        Some(s) => SignMethod::parse(s).unwrap_or_else(|| {
            cx.err(
                "platform.sign_method",
                format!("{s:?}: expected HMAC_SHA256 or MD5"),
            );
            SignMethod::HmacSha256
        }),
    };
    let base_url = p.base_url.unwrap_or_else(|| DEFAULT_BASE_URL.to_string());
    if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
        cx.err(
            "platform.base_url",
            format!("{base_url:?} is not an http(s) URL"),
        );
    }
    let timeout = p
        .timeout_secs
        .unwrap_or(crate::api::client::DEFAULT_TIMEOUT.as_secs());
    if !(1..=600).contains(&timeout) {
        cx.err("platform.timeout_secs", "must be between 1 and 600");
    }
    PlatformConfig {
        base_url,
        authorize_url: p
            .authorize_url
            .unwrap_or_else(|| DEFAULT_AUTHORIZE_URL.to_string()),
        redirect_uri: p.redirect_uri,
        app_key,
        app_secret: cx
            .secret("app_secret", p.app_secret, p.app_secret_file, true)
            .unwrap_or_else(|| Secret::new("")),
        sign_secret: cx
            .secret("sign_secret", p.sign_secret, p.sign_secret_file, true)
            .unwrap_or_else(|| Secret::new("")),
        msg_secret: cx.secret("msg_secret", p.msg_secret, p.msg_secret_file, push_enabled),
        sign_method,
        timeout: Duration::from_secs(timeout),
    }
}

pub(super) fn build_database(cx: &mut Ctx, d: RawDatabase) -> DatabaseUrl {
    let url = match d.url {
        Some(url) => DatabaseUrl::parse(&url).unwrap_or_else(|e| {
            cx.err("database.url", e.to_string());
            DatabaseUrl::Sqlite(PathBuf::from("kwaishop-sync.db"))
        }),
        None => DatabaseUrl::Sqlite(
            cx.state_directory()
                .unwrap_or_default()
                .join("kwaishop-sync.db"),
        ),
    };
    // A relative SQLite path is relative to the config file, like the secret files.
    url.relative_to(cx.base)
}

pub(super) fn build_limits(cx: &mut Ctx, l: RawLimits) -> LimitsConfig {
    let mut qps = BTreeMap::new();
    let check = |cx: &mut Ctx, field: String, v: f64| {
        if !(v > 0.0 && v <= 5000.0) {
            cx.err(field, "must be above 0 and at most 5000");
        }
    };
    match l.qps {
        QpsSetting::Unset => {}
        QpsSetting::All(v) => {
            check(cx, "limits.qps".into(), v);
            qps.extend(Method::ALL.iter().map(|m| (*m, v)));
        }
        QpsSetting::PerMethod(map) => {
            if let Some(v) = map.get("default") {
                check(cx, "limits.qps.default".into(), *v);
                qps.extend(Method::ALL.iter().map(|m| (*m, *v)));
            }
            for (name, v) in map.iter().filter(|(k, _)| k.as_str() != "default") {
                match Method::from_name(name) {
                    Some(m) => {
                        check(cx, format!("limits.qps.{name}"), *v);
                        qps.insert(m, *v);
                    }
                    None => cx.err(format!("limits.qps.{name}"), "unknown method (use the dotted name, e.g. open.order.cursor.list, or default)"),
                }
            }
        }
    }
    if l.daily_quota == Some(0) {
        cx.err(
            "limits.daily_quota",
            "must be at least 1 (omit it for no local limit)",
        );
    }
    LimitsConfig {
        qps,
        daily_quota: l.daily_quota,
    }
}

pub(super) fn build_retry(cx: &mut Ctx, r: RawRetry) -> RetryConfig {
    let d = RetryConfig::default();
    let max_attempts = r.max_attempts.unwrap_or(d.max_attempts);
    if !(1..=20).contains(&max_attempts) {
        cx.err("retry.max_attempts", "must be between 1 and 20");
    }
    let ms = |v: Option<u64>, d: Duration| v.map_or(d, Duration::from_millis);
    RetryConfig {
        max_attempts,
        throttled_delay: ms(r.throttled_delay_ms, d.throttled_delay),
        transient_delay: ms(r.transient_delay_ms, d.transient_delay),
        max_delay: ms(r.max_delay_ms, d.max_delay),
    }
}

pub(super) fn check_cron(cx: &mut Ctx, field: &str, expr: &str) {
    let parsed = croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .build()
        .parse(expr);
    if let Err(e) = parsed {
        cx.err(field, format!("{expr:?} is not a cron expression with seconds (sec min hour day month weekday): {e}"));
    }
}

pub(super) fn build_sync(cx: &mut Ctx, s: RawSync) -> SyncConfig {
    let d = SyncConfig::default();
    let backfill_days = s.backfill_days.unwrap_or(d.backfill_days);
    if !(1..=90).contains(&backfill_days) {
        cx.err(
            "sync.backfill_days",
            "must be between 1 and 90 (the platform keeps 90 days)",
        );
    }
    let reconcile_days = s.reconcile_days.unwrap_or(d.reconcile_days);
    if !(1..=90).contains(&reconcile_days) {
        cx.err("sync.reconcile_days", "must be between 1 and 90");
    }
    let reconcile_schedule = s.reconcile_schedule.unwrap_or(d.reconcile_schedule);
    check_cron(cx, "sync.reconcile_schedule", &reconcile_schedule);
    let concurrency = s.concurrency.unwrap_or(d.concurrency);
    if !(1..=64).contains(&concurrency) {
        cx.err("sync.concurrency", "must be between 1 and 64");
    }
    let runs_at_once = s.runs_at_once.unwrap_or(d.runs_at_once);
    if !(1..=1024).contains(&runs_at_once) {
        cx.err("sync.runs_at_once", "must be between 1 and 1024");
    }
    SyncConfig {
        concurrency: concurrency.clamp(1, 64),
        runs_at_once: runs_at_once.clamp(1, 1024),
        backfill_days,
        reconcile_days,
        reconcile_schedule,
        max_pages_per_window: s
            .max_pages_per_window
            .unwrap_or(d.max_pages_per_window)
            .max(1),
    }
}

struct StreamDefaults {
    schedule: &'static str,
    window_minutes: u64,
    max_window_minutes: u64,
    page_size: u32,
    page_range: (u32, u32),
}

impl StreamDefaults {
    const ORDERS: Self = Self {
        schedule: "0 */5 * * * *",
        window_minutes: 7 * 1440,
        max_window_minutes: 7 * 1440,
        page_size: 50,
        page_range: (1, 50),
    };
    const REFUNDS: Self = Self {
        schedule: "30 */5 * * * *",
        window_minutes: 1440,
        max_window_minutes: 1440,
        page_size: 100,
        page_range: (1, 100),
    };
    const ITEMS: Self = Self {
        schedule: "0 15 * * * *",
        window_minutes: 0,
        max_window_minutes: 0,
        page_size: 100,
        page_range: (10, 100),
    };
}

impl StreamDefaults {
    fn of(stream: Stream) -> Self {
        match stream {
            Stream::Orders => Self::ORDERS,
            Stream::Refunds => Self::REFUNDS,
            Stream::Items => Self::ITEMS,
        }
    }
}

impl StreamConfig {
    /// A stream's settings when the config file says nothing of it.
    pub fn default_for(stream: Stream) -> StreamConfig {
        let mut cx = Ctx {
            base: Path::new("."),
            env: &[],
            errors: Vec::new(),
        };
        build_stream(&mut cx, stream, RawStream::default())
    }
}

pub(super) fn build_stream(cx: &mut Ctx, stream: Stream, s: RawStream) -> StreamConfig {
    let (name, d) = (stream.as_str(), StreamDefaults::of(stream));
    let schedule = s.schedule.unwrap_or_else(|| d.schedule.to_string());
    check_cron(cx, &format!("streams.{name}.schedule"), &schedule);
    let window = s.window_minutes.unwrap_or(d.window_minutes);
    if d.max_window_minutes > 0 && !(1..=d.max_window_minutes).contains(&window) {
        cx.err(
            format!("streams.{name}.window_minutes"),
            format!(
                "must be between 1 and {} (the platform's limit)",
                d.max_window_minutes
            ),
        );
    }
    let lookback_secs = s.lookback_secs.unwrap_or(600);
    // Each window starts a lookback before the checkpoint: one no wider than the lookback
    // ends at or before the checkpoint, reads nothing new, and the stream never moves.
    if d.max_window_minutes > 0 && window * 60 <= lookback_secs {
        cx.err(
            format!("streams.{name}.window_minutes"),
            format!(
                "{window} minutes is not wider than streams.{name}.lookback_secs ({lookback_secs} s): \
                 each window re-reads the lookback before the checkpoint, so it would end before \
                 the checkpoint and the stream would never move; widen the window or shorten the lookback"
            ),
        );
    }
    let page_size = s.page_size.unwrap_or(d.page_size);
    if !(d.page_range.0..=d.page_range.1).contains(&page_size) {
        cx.err(
            format!("streams.{name}.page_size"),
            format!("must be between {} and {}", d.page_range.0, d.page_range.1),
        );
    }
    let sort = s.sort.unwrap_or(1);
    if sort != 1 && sort != 2 {
        cx.err(
            format!("streams.{name}.sort"),
            "must be 1 (descending) or 2 (ascending)",
        );
    }
    StreamConfig {
        enabled: s.enabled.unwrap_or(true),
        schedule,
        window: Duration::from_secs(window * 60),
        page_size,
        lookback: Duration::from_secs(lookback_secs),
        settle: Duration::from_secs(s.settle_secs.unwrap_or(60)),
        sort,
    }
}

pub(super) fn build_push(p: RawPush) -> PushConfig {
    let d = PushConfig::default();
    PushConfig {
        enabled: p.enabled.unwrap_or(d.enabled),
        path: p.path.unwrap_or(d.path),
    }
}

pub(super) fn build_http(cx: &mut Ctx, h: RawHttp) -> HttpConfig {
    let listen = h.listen.unwrap_or(HttpConfig::default().listen);
    if listen.parse::<std::net::SocketAddr>().is_err() {
        cx.err(
            "http.listen",
            format!("{listen:?} is not an address like 127.0.0.1:8610"),
        );
    }
    HttpConfig { listen }
}

pub(super) fn build_daemon(cx: &mut Ctx, d: RawDaemon) -> DaemonConfig {
    let defaults = DaemonConfig::default();
    let grace = d.grace_secs.unwrap_or(defaults.grace.as_secs());
    if !(1..=600).contains(&grace) {
        cx.err("daemon.grace_secs", "must be between 1 and 600");
    }
    let lease = d.lease_secs.unwrap_or(defaults.lease.as_secs());
    if !(5..=3600).contains(&lease) {
        cx.err("daemon.lease_secs", "must be between 5 and 3600");
    }
    let state_dir = match d.state_dir {
        Some(p) => cx.path(&p),
        None => cx
            .state_directory()
            .map_or_else(|| cx.base.to_path_buf(), |dir| cx.path(&dir)),
    };
    DaemonConfig {
        grace: Duration::from_secs(grace),
        state_dir,
        lease: Duration::from_secs(lease),
    }
}

pub(super) fn build_queue(cx: &mut Ctx, q: RawQueue) -> QueueConfig {
    let d = QueueConfig::default();
    let max_attempts = q.max_attempts.unwrap_or(d.max_attempts);
    if !(1..=100).contains(&max_attempts) {
        cx.err("queue.max_attempts", "must be between 1 and 100");
    }
    let concurrency = q.concurrency.unwrap_or(d.concurrency);
    if !(1..=256).contains(&concurrency) {
        cx.err("queue.concurrency", "must be between 1 and 256");
    }
    let lease = q.lease_secs.unwrap_or(d.lease.as_secs());
    if lease < 10 {
        cx.err("queue.lease_secs", "must be at least 10");
    }
    QueueConfig {
        max_attempts,
        retention: q
            .retention_days
            .map_or(d.retention, |days| Duration::from_secs(days * 86_400)),
        concurrency,
        lease: Duration::from_secs(lease),
        retry_base: q
            .retry_base_secs
            .map_or(d.retry_base, |s| Duration::from_secs(s.max(1))),
    }
}

pub(super) fn build_shops(cx: &mut Ctx, shops: Vec<RawShop>) -> Vec<ShopConfig> {
    let mut out: Vec<ShopConfig> = Vec::new();
    for (i, s) in shops.into_iter().enumerate() {
        let id = s.id.unwrap_or_default();
        let valid = !id.is_empty()
            && id.len() <= 64
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !valid {
            cx.err(
                format!("shops[{i}].id"),
                "required: 1–64 characters of letters, digits, - _ .",
            );
        } else if out.iter().any(|o| o.id == id) {
            cx.err(format!("shops[{i}].id"), format!("{id:?} is used twice"));
        }
        out.push(ShopConfig {
            id,
            open_id: s.open_id,
            seller_id: s.seller_id,
            name: s.name,
            token_file: s.token_file.map(|p| cx.path(&p)),
        });
    }
    out
}

pub(super) fn build_clock(cx: &mut Ctx, c: RawClock) -> Option<ClockConfig> {
    let speed = c.speed.unwrap_or(1.0);
    if !(speed > 0.0 && speed.is_finite()) {
        cx.err("clock.speed", "must be a positive number");
        return None;
    }
    let now = crate::clock::wall_ms();
    Some(ClockConfig {
        speed,
        wall_origin_ms: c.wall_origin_ms.unwrap_or(now),
        origin_ms: c.origin_ms.unwrap_or(now),
    })
}
