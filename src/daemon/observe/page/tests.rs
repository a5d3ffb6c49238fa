//! The page's escaping, hooks and self-containment, on a report with hostile values.

use std::collections::BTreeMap;

use super::*;
use crate::clock::DAY_MS;
use crate::daemon::observe::status::HourCalls;

const NOW: i64 = 1_704_124_800_000;
const HOSTILE: &str = "<img src=x onerror=alert(1)>\"'&";

fn report() -> StatusReport {
    let stream = StreamView {
        stream: "orders",
        ran: true,
        checkpoint_ms: Some(NOW - 90_000),
        lag_ms: Some(90_000),
        rows: Some(1_234),
        last_success_ms: Some(NOW - 1_000),
        last_error: Some(format!("boom {HOSTILE}")),
        last_error_at_ms: Some(NOW),
        failures_in_row: 3,
        paused_until_ms: None,
        stalled_behind_ms: Some(3 * DAY_MS),
        quarantined: 2,
    };
    let shop = ShopView {
        shop_id: HOSTILE.into(),
        name: Some(HOSTILE.into()),
        status: "needs_reauth",
        status_reason: Some(HOSTILE.into()),
        access_expires_at_ms: Some(NOW - 1),
        refresh_expires_at_ms: Some(NOW + DAY_MS),
        calls_today: Some(1_900),
        quota_paused_until_ms: None,
        rows: BTreeMap::from([("orders", 1_234), ("skus", 5)]),
        streams: vec![stream],
    };
    let method = MethodCalls {
        method: HOSTILE.into(),
        calls: 3,
        ok: 2,
        failed: 1,
        failures: BTreeMap::from([(HOSTILE.to_string(), 1)]),
        success_rate: Some(2.0 / 3.0),
    };
    let run = RunView {
        id: 7,
        shop_id: HOSTILE.into(),
        stream: "orders",
        kind: HOSTILE,
        started_at_ms: NOW - 5_000,
        duration_ms: Some(1_500),
        outcome: Some("failed".into()),
        pages: 1,
        rows: 50,
        calls: 2,
        error: Some(HOSTILE.into()),
    };
    StatusReport {
        service: "kwaishop-sync",
        version: "0.1.0",
        generated_at_ms: NOW,
        daily_quota: Some(2_000),
        shops: vec![shop],
        rows_counted_at_ms: Some(NOW),
        runs: Some(vec![run]),
        queue: None,
        api_calls: Some(ApiCallsView {
            since_ms: NOW - 23 * 3_600_000,
            methods: vec![method.clone()],
            total: method,
            hours: vec![HourCalls {
                hour_ms: NOW,
                ok: 2,
                failed: 1,
            }],
        }),
        failed_reads: 1,
    }
}

#[test]
fn every_value_from_the_database_is_escaped() {
    let page = render_page(&report());
    assert!(!page.contains("<img"), "{page}");
    assert!(!page.contains("onerror=alert(1)>"), "{page}");
    assert!(page.contains("&lt;img src=x onerror=alert(1)&gt;&quot;&#39;&amp;"));
    assert!(
        page.contains("data-k=\"rows.&lt;img"),
        "hooks are escaped too"
    );
}

#[test]
fn the_page_refreshes_itself_and_loads_nothing() {
    let page = render_page(&report());
    assert!(page.contains("<meta http-equiv=\"refresh\" content=\"15\">"));
    for external in [
        "http:", "https:", "//", "<script", "<link", "src=\"", "url(",
    ] {
        let outside_data = page.replace(&escape(HOSTILE), "");
        assert!(!outside_data.contains(external), "{external} in {page}");
    }
}

#[test]
fn figures_show_with_their_hooks() {
    let page = render_page(&report());
    let shop = escape(HOSTILE);
    for needle in [
        format!("data-k=\"rows.{shop}.orders\">1,234<"),
        format!("data-k=\"quota.{shop}\">1,900<"),
        format!("data-k=\"lag.{shop}.orders\" data-ms=\"90000\">1 min<"),
        "data-k=\"run.7.rows\">50<".to_string(),
        "needs authorization".to_string(),
        "expired 1 ms ago".to_string(),
        "1 database read(s) failed".to_string(),
        "The queue could not be read.".to_string(),
    ] {
        assert!(page.contains(&needle), "no {needle} in {page}");
    }
}

/// Rows counted at the view show plainly; rows counted earlier (a large mirror is counted
/// between views) say how old the count is.
#[test]
fn rows_counted_before_the_view_say_when() {
    let fresh = render_page(&report());
    assert!(fresh.contains("<th class=\"n\">Rows</th>"), "{fresh}");
    let older = render_page(&StatusReport {
        rows_counted_at_ms: Some(NOW - 4_000),
        ..report()
    });
    assert!(
        older.contains("Rows <span class=\"sub\">4 s ago</span>"),
        "{older}"
    );
}

/// `n` quiet shops (`shop-0000`, …) whose orders stream is a minute behind, and `i` ms more
/// for `shop-<i>`.
fn quiet_shops(n: usize) -> Vec<ShopView> {
    let base = report();
    (0..n)
        .map(|i| {
            let mut shop = base.shops[0].clone();
            shop.shop_id = format!("shop-{i:04}");
            shop.name = None;
            shop.status = "active";
            shop.status_reason = None;
            let stream = &mut shop.streams[0];
            stream.lag_ms = Some(60_000 + i as i64);
            stream.last_error = None;
            stream.failures_in_row = 0;
            stream.stalled_behind_ms = None;
            stream.quarantined = 0;
            shop
        })
        .collect()
}

fn cards(page: &str) -> Vec<&str> {
    page.match_indices("<article class=\"card\" id=\"shop-")
        .map(|(at, m)| {
            let id = &page[at + m.len()..];
            &id[..id.find('"').unwrap_or(0)]
        })
        .collect()
}

/// An ISV's thousand shops: the page shows the fifty that most need a look, those first (a
/// shop to reauthorize, one whose stream never ran, then the furthest behind), and says where
/// the others are; fifty or fewer show in their order, without the note.
#[test]
fn of_many_shops_the_page_shows_those_that_most_need_a_look() {
    let mut shops = quiet_shops(1_000);
    shops[500].status = "needs_reauth";
    shops[900].streams[0].ran = false;
    shops[700].streams[0].lag_ms = Some(5 * DAY_MS);
    shops[300].streams[0].failures_in_row = 2;
    let page = render_page(&StatusReport { shops, ..report() });
    let shown = cards(&page);
    assert_eq!(shown.len(), PAGE_SHOPS);
    assert_eq!(
        shown[..4],
        ["shop-0500", "shop-0300", "shop-0900", "shop-0700"]
    );
    // Then the quiet ones furthest behind: 999, 998, … down to 954.
    assert_eq!(shown[4], "shop-0999");
    assert!(
        !shown.contains(&"shop-0000"),
        "the least behind is left out"
    );
    assert!(
        page.contains("data-k=\"shops.shown\">The 50 of 1,000 shops that most need a look"),
        "{page}"
    );
    let few = render_page(&StatusReport {
        shops: quiet_shops(PAGE_SHOPS),
        ..report()
    });
    let shown = cards(&few);
    assert_eq!(shown.len(), PAGE_SHOPS);
    assert!(shown.is_sorted(), "{shown:?}");
    assert!(!few.contains("shops.shown"));
}
